"""A real ``digestmail send`` against local fakes, next to a bare client doing only the wire part.

Run: ``.venv/bin/python bench/send.py [--n 100000] [--latency 0 200] [--concurrency 4]
[--smtp-n 20000] [--connections 10] [--runs 3] [--only sendgrid|smtp]``.

A fresh SQLite database under a temporary directory gets N active subscribers and the
example issue (rendered once). digestmail's modules are compiled to bytecode first, as an
installed package's are (``PYTHONDONTWRITEBYTECODE`` would otherwise have every run
compile them again, some 70 ms of its start). Each product run is the command a user types,
``digestmail send SLUG --yes``, in a process of its own, timed from its start to its
exit (imports, audience snapshot, claim, personalise, hand over, record); its peak
memory is that process's ``ru_maxrss``. Each fake server runs in another process.

The bare clients show what the same fake server allows:

- SendGrid: the official client posting the product's own first request (taken from
  the fake) again and again, one request at a time and with ``--concurrency`` in
  flight, as many recipients in all as the product sent; the fake answers every
  request after ``--latency`` milliseconds (0 is a local instant API; 200 is what a
  remote API costs);
- SMTP: ``--connections`` persistent ``smtplib`` connections sending the product's own
  first message, already in its wire form, as fast as the server takes them.

Each figure is the median of ``--runs`` runs; the ratio is product ÷ bare client
measured in the same round. Targets (2 cores, SQLite, 100,000 recipients): SendGrid at
least 0.6 of the bare client with the same concurrency at 0 ms and at 200 ms; SMTP at
least 0.9 of the bare client with the same connections; peak memory under 150 MB.
"""

from __future__ import annotations

import argparse
import itertools
import multiprocessing as mp
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, cast

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # tests.fakes

EXAMPLE = ROOT / "examples" / "vol-4.1.md"
FALLBACK = ROOT / "tests" / "fixtures" / "campaigns" / "issue.md"
DIGESTMAIL = str(Path(sys.executable).parent / "digestmail")
API_KEY = "SG.bench-key"
SECRET = "bench-secret-key-" + "x" * 32
BASE_URL = "https://digest.example.org"


def prepare(path: Path, n: int) -> str:
    """A migrated database at ``path`` with ``n`` active subscribers and the issue stored;
    returns the issue's slug."""
    from sqlalchemy import Table, insert

    from digestmail.config import Settings
    from digestmail.db import Database
    from digestmail.issues import add_issue
    from digestmail.migrate import upgrade
    from digestmail.models import Subscriber, utcnow

    db = Database(f"sqlite:///{path}")
    upgrade(db.engine)
    now = utcnow()
    table = cast(Table, Subscriber.__table__)
    with db.engine.begin() as conn:
        for start in range(0, n, 10_000):
            conn.execute(
                insert(table),
                [
                    {
                        "email": f"reader{i}@example.com",
                        "email_key": f"reader{i}@example.com",
                        "name": f"Reader {i}" if i % 3 else None,
                        "status": "active",
                        "source": "import",
                        "soft_bounce_score": 0,
                        "created_at": now,
                        "updated_at": now,
                    }
                    for i in range(start, min(n, start + 10_000))
                ],
            )
    media = path.parent / "media"  # the example issue's picture, which it names
    media.mkdir(exist_ok=True)
    source = EXAMPLE if EXAMPLE.exists() else FALLBACK
    for picture in source.parent.glob("*.jpg"):
        shutil.copy(picture, media)
    settings = Settings(
        database_url=f"sqlite:///{path}", base_url=BASE_URL, secret_key=SECRET, media_dir=media
    )
    slug = add_issue(db, settings, source).slug
    db.dispose()
    return slug


def compile_package() -> None:
    """Bytecode for every digestmail module, as pip writes it when it installs one."""
    import compileall

    import digestmail

    compileall.compile_dir(Path(digestmail.__file__).parent, quiet=1)


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# --- the fake servers, each in a process of its own ----------------------------------------


def _serve(kind: str, latency: float, pipe: Connection) -> None:
    """Sends its address; then answers "count" with (count, CPU seconds, first message)
    until told "stop"."""
    fake: Any
    if kind == "sendgrid":
        from tests.fakes.sendgrid import FakeSendGrid

        fake = FakeSendGrid(api_key=API_KEY, record=False, latency=latency)
        address = fake.url
    else:
        from tests.fakes.smtp import SMTPSink

        fake = SMTPSink(record=False)
        address = fake.url()
    with fake:
        pipe.send(address)
        while pipe.recv() == "count":
            if kind == "sendgrid":
                first: Any = fake.first
                count = fake.recipients
                started = fake.hits[0].arrived if fake.hits else None
            else:
                first = fake.first and (fake.first.mail_from, fake.first.data)
                count = fake.count
                started = fake.first_at
            pipe.send((count, _cpu(), first, started))


class Server:
    def __init__(self, kind: str, latency: float = 0.0) -> None:
        ctx = mp.get_context("spawn")
        theirs, self.pipe = ctx.Pipe()
        self.process = ctx.Process(target=_serve, args=(kind, latency, theirs), daemon=True)
        self.process.start()
        self.address: str = self.pipe.recv()

    def count(self) -> tuple[int, float, Any, float | None]:
        """Recipients (or messages) taken so far, the server's CPU seconds, the first
        request (or message), and when the first arrived (``time.monotonic``)."""
        self.pipe.send("count")
        result: tuple[int, float, Any, float | None] = self.pipe.recv()
        return result

    def stop(self) -> None:
        self.pipe.send("stop")
        self.process.join(timeout=10)


# --- the product: `digestmail send`, a process of its own ---------------------------------


def product(db_path: Path, slug: str, env: dict[str, str]) -> dict[str, float]:
    """Run ``digestmail send SLUG --yes``; wall time, peak memory and CPU of the process."""
    full = {
        **{k: v for k, v in os.environ.items() if not k.startswith("DIGESTMAIL_")},
        "DIGESTMAIL_DATABASE_URL": f"sqlite:///{db_path}",
        "DIGESTMAIL_BASE_URL": BASE_URL,
        "DIGESTMAIL_SECRET_KEY": SECRET,
        "DIGESTMAIL_LOG_LEVEL": "WARNING",
        **env,
    }
    began = time.monotonic()
    start = time.perf_counter()
    proc = subprocess.Popen(
        [DIGESTMAIL, "send", slug, "--yes"],
        env=full,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode() if proc.stderr else ""
    if proc.returncode != 0:
        raise SystemExit(f"digestmail send failed ({proc.returncode}): {err}")
    return {
        "elapsed": elapsed,
        "began": began,
        "rss_mb": usage.ru_maxrss / 1024,
        "cpu": usage.ru_utime + usage.ru_stime,
    }


# --- the bare clients ----------------------------------------------------------------------


def bare_sendgrid(url: str, body: dict[str, Any], requests: int, concurrency: int) -> float:
    """Seconds for ``requests`` posts of ``body`` with ``concurrency`` in flight."""
    import sendgrid

    counter = itertools.count()
    clients = [sendgrid.SendGridAPIClient(api_key=API_KEY, host=url) for _ in range(concurrency)]

    def work(client: Any) -> None:
        while next(counter) < requests:
            client.client.mail.send.post(request_body=body, timeout=30)

    threads = [threading.Thread(target=work, args=(c,)) for c in clients]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - start


def bare_smtp(url: str, sender: str, data: bytes, messages: int, connections: int) -> float:
    """Seconds for ``messages`` sends of one prepared message over ``connections``
    persistent connections: MAIL, RCPT, DATA and the wire bytes, nothing else."""
    import smtplib
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    wire = (b"\r\n" + data).replace(b"\r\n.", b"\r\n..")[2:]
    if not wire.endswith(b"\r\n"):
        wire += b"\r\n"
    wire += b".\r\n"
    counter = itertools.count()
    sessions = []
    for _ in range(connections):
        smtp = smtplib.SMTP(parts.hostname, parts.port, timeout=30)
        smtp.ehlo()
        sessions.append(smtp)

    def work(smtp: smtplib.SMTP) -> None:
        while (i := next(counter)) < messages:
            assert smtp.docmd("MAIL", f"FROM:<{sender}>")[0] == 250
            assert smtp.docmd("RCPT", f"TO:<bare{i}@example.com>")[0] == 250
            assert smtp.docmd("DATA")[0] == 354
            smtp.send(wire)
            assert smtp.getreply()[0] == 250

    threads = [threading.Thread(target=work, args=(s,)) for s in sessions]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    for smtp in sessions:
        smtp.quit()
    return elapsed


# --- rounds --------------------------------------------------------------------------------


def _load() -> str:
    return "/".join(f"{x:.2f}" for x in os.getloadavg())


def sendgrid_round(
    template: Path, work: Path, slug: str, n: int, latency_ms: float, concurrency: int
) -> dict[str, Any]:
    server = Server("sendgrid", latency_ms / 1000)
    try:
        db_path = work / "sendgrid.db"
        shutil.copyfile(template, db_path)
        before, _, _, _ = server.count()
        load = _load()
        run = product(
            db_path,
            slug,
            {
                "DIGESTMAIL_TRANSPORT": "sendgrid",
                "SENDGRID_API_KEY": API_KEY,
                "DIGESTMAIL_SENDGRID_API_HOST": server.address,
                "DIGESTMAIL_SEND_CONCURRENCY": str(concurrency),
            },
        )
        after, server_cpu, first, first_at = server.count()
        if after - before != n:
            raise SystemExit(f"the fake SendGrid saw {after - before:,} recipients, not {n:,}")
        per_request = len(first["personalizations"])
        requests = -(-n // per_request)
        one = bare_sendgrid(server.address, first, requests, 1)
        many = bare_sendgrid(server.address, first, requests, concurrency)
        sent = requests * per_request
    finally:
        server.stop()
    return {
        "product": n / run["elapsed"],
        "startup": (first_at or run["began"]) - run["began"],
        "bare1": sent / one,
        "bareC": sent / many,
        "rss_mb": run["rss_mb"],
        "cpu": run["cpu"],
        "elapsed": run["elapsed"],
        "server_cpu": server_cpu,
        "load": load,
    }


def smtp_round(template: Path, work: Path, slug: str, n: int, connections: int) -> dict[str, Any]:
    server = Server("smtp")
    try:
        db_path = work / "smtp.db"
        shutil.copyfile(template, db_path)
        load = _load()
        run = product(
            db_path,
            slug,
            {
                "DIGESTMAIL_TRANSPORT": "smtp",
                "DIGESTMAIL_SMTP_URL": server.address,
                "DIGESTMAIL_SMTP_CONNECTIONS": str(connections),
            },
        )
        count, server_cpu, first, first_at = server.count()
        if count != n:
            raise SystemExit(f"the SMTP sink received {count:,} messages, not {n:,}")
        sender, data = first
        bare = bare_smtp(server.address, sender, data, n, connections)
    finally:
        server.stop()
    return {
        "product": n / run["elapsed"],
        "startup": (first_at or run["began"]) - run["began"],
        "bareC": n / bare,
        "rss_mb": run["rss_mb"],
        "cpu": run["cpu"],
        "elapsed": run["elapsed"],
        "server_cpu": server_cpu,
        "load": load,
    }


def _median(rounds: list[dict[str, Any]], key: str) -> float:
    return statistics.median(r[key] for r in rounds)


def _ratios(rounds: list[dict[str, Any]], key: str) -> float:
    return statistics.median(r["product"] / r[key] for r in rounds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=100_000, help="SendGrid recipients (100,000)")
    parser.add_argument("--smtp-n", type=int, default=20_000, help="SMTP recipients (20,000)")
    parser.add_argument(
        "--latency",
        type=float,
        nargs="+",
        default=[0, 200],
        help="fake SendGrid answer delays (ms)",
    )
    parser.add_argument("--concurrency", type=int, default=4, help="SendGrid requests in flight")
    parser.add_argument("--connections", type=int, default=10, help="SMTP connections")
    parser.add_argument("--runs", type=int, default=3, help="rounds per figure (median shown)")
    parser.add_argument("--only", choices=["sendgrid", "smtp"], help="run one path only")
    args = parser.parse_args()

    print(f"load average at start: {_load()} ({os.cpu_count()} cores)")
    compile_package()
    with tempfile.TemporaryDirectory(prefix="digestmail-bench-") as tmp:
        work = Path(tmp)
        if args.only != "smtp":
            template = work / "template-sendgrid.db"
            t0 = time.perf_counter()
            slug = prepare(template, args.n)
            print(f"prepared {args.n:,} subscribers in {time.perf_counter() - t0:.1f} s")
            for latency in args.latency:
                rounds = [
                    sendgrid_round(template, work, slug, args.n, latency, args.concurrency)
                    for _ in range(args.runs)
                ]
                for r in rounds:
                    print(
                        f"  sendgrid {latency:g} ms: product {r['product']:8,.0f}/s "
                        f"({r['elapsed']:.2f} s, first request after {r['startup']:.2f} s, "
                        f"CPU {r['cpu']:.1f} s, {r['rss_mb']:.0f} MB), "
                        f"bare 1 {r['bare1']:8,.0f}/s, bare {args.concurrency} "
                        f"{r['bareC']:8,.0f}/s; fake CPU {r['server_cpu']:.1f} s; "
                        f"load {r['load']}"
                    )
                print(
                    f"SendGrid, {latency:g} ms, {args.concurrency} in flight: "
                    f"digestmail send {_median(rounds, 'product'):,.0f}/s; bare client "
                    f"{_median(rounds, 'bare1'):,.0f}/s one at a time, "
                    f"{_median(rounds, 'bareC'):,.0f}/s with {args.concurrency} in flight; "
                    f"ratio {_ratios(rounds, 'bareC'):.2f} (same concurrency), "
                    f"{_ratios(rounds, 'bare1'):.2f} (one at a time); "
                    f"peak memory {max(r['rss_mb'] for r in rounds):.0f} MB"
                )
        if args.only != "sendgrid":
            template = work / "template-smtp.db"
            slug = prepare(template, args.smtp_n)
            rounds = [
                smtp_round(template, work, slug, args.smtp_n, args.connections)
                for _ in range(args.runs)
            ]
            for r in rounds:
                print(
                    f"  smtp: product {r['product']:7,.0f}/s ({r['elapsed']:.2f} s, first message "
                    f"after {r['startup']:.2f} s, CPU {r['cpu']:.1f} s, {r['rss_mb']:.0f} MB), "
                    f"bare {r['bareC']:7,.0f}/s; "
                    f"sink CPU {r['server_cpu']:.1f} s; load {r['load']}"
                )
            print(
                f"SMTP, {args.connections} connections, {args.smtp_n:,} messages: "
                f"digestmail send {_median(rounds, 'product'):,.0f}/s; bare client "
                f"{_median(rounds, 'bareC'):,.0f}/s; ratio {_ratios(rounds, 'bareC'):.2f}; "
                f"peak memory {max(r['rss_mb'] for r in rounds):.0f} MB"
            )
    print(f"load average at end: {_load()}")


if __name__ == "__main__":
    main()
