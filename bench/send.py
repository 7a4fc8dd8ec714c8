"""Send one issue to N subscribers through SendGrid and SMTP fakes on 127.0.0.1.

Run: ``.venv/bin/python bench/send.py [--n 100000] [--only sendgrid|smtp]``.

A fresh SQLite database under a temporary directory gets N active subscribers and the
example issue (rendered once). Each path then runs as a real campaign, end to end:
audience snapshot into the ledger, claim, personalise, hand over, record. Every path
runs in a process of its own (peak memory is that process's ``ru_maxrss``) and each
fake server in another process, so the sender has a core to itself as in production.

Targets (2 cores, SQLite): SendGrid ≥ 10,000 recipients/s, SMTP ≥ 1,000 messages/s,
peak memory < 300 MB at 100,000 subscribers.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import shutil
import sys
import tempfile
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, cast

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # tests.fakes

EXAMPLE = ROOT / "examples" / "vol-4.1.md"
FALLBACK = ROOT / "tests" / "fixtures" / "campaigns" / "issue.md"
API_KEY = "SG.bench-key"


def _settings(db_path: Path, **extra: Any) -> Any:
    from digestmail.config import Settings

    return Settings(
        database_url=f"sqlite:///{db_path}",
        base_url="https://digest.example.org",
        secret_key="bench-secret-key-" + "x" * 32,
        **extra,
    )


def prepare(directory: Path, n: int) -> tuple[Path, str]:
    """A migrated database with ``n`` active subscribers and the issue stored."""
    from sqlalchemy import Table, insert

    from digestmail.db import Database
    from digestmail.issues import add_issue
    from digestmail.migrate import upgrade
    from digestmail.models import Subscriber, utcnow

    path = directory / "bench.db"
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
    source = EXAMPLE if EXAMPLE.exists() else FALLBACK
    slug = add_issue(db, _settings(path), source).slug
    db.dispose()
    return path, slug


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _serve(kind: str, pipe: Connection) -> None:
    """A fake server in its own process; sends its address, stops when told."""
    if kind == "sendgrid":
        from tests.fakes.sendgrid import FakeSendGrid

        with FakeSendGrid(api_key=API_KEY, record=False) as fake:
            pipe.send(fake.url)
            pipe.recv()
            pipe.send((fake.recipients, _cpu()))
    else:
        from tests.fakes.smtp import SMTPSink

        with SMTPSink(record=False) as sink:
            pipe.send(sink.url())
            pipe.recv()
            pipe.send((sink.count, _cpu()))


def _send(kind: str, db_path: Path, slug: str, address: str, pipe: Connection) -> None:
    """One campaign, timed, in a fresh process."""
    from digestmail import campaigns
    from digestmail.db import Database

    if kind == "sendgrid":
        settings = _settings(
            db_path,
            transport="sendgrid",
            sendgrid_api_key=API_KEY,
            sendgrid_api_host=address,
        )
    else:
        settings = _settings(db_path, transport="smtp", smtp_url=address)
    db = Database(settings.database_url)
    cid = campaigns.create_campaign(db, settings, slug)
    marks: list[float] = []
    start = time.perf_counter()
    info = campaigns.run_campaign(
        db, settings, cid, on_progress=lambda _: marks.append(time.perf_counter())
    )
    elapsed = time.perf_counter() - start
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    pipe.send(
        {
            "status": info.status,
            "accepted": info.counts["accepted"],
            "elapsed": elapsed,
            "ledger": marks[0] - start if marks else 0.0,
            "rss_mb": rss_mb,
            "cpu": _cpu(),
        }
    )
    db.dispose()


def run_path(kind: str, db_path: Path, slug: str) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    server_end, here = ctx.Pipe()
    server = ctx.Process(target=_serve, args=(kind, server_end), daemon=True)
    server.start()
    address = here.recv()
    sender_end, result_pipe = ctx.Pipe()
    sender = ctx.Process(target=_send, args=(kind, db_path, slug, address, sender_end))
    sender.start()
    result: dict[str, Any] = result_pipe.recv()
    sender.join()
    here.send("stop")
    result["server_count"], result["server_cpu"] = here.recv()
    server.join(timeout=10)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=100_000, help="subscribers (default 100,000)")
    parser.add_argument("--only", choices=["sendgrid", "smtp"], help="run one path only")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="digestmail-bench-") as tmp:
        directory = Path(tmp)
        t0 = time.perf_counter()
        template_db, slug = prepare(directory, args.n)
        print(f"prepared {args.n:,} subscribers and {slug} in {time.perf_counter() - t0:.1f} s")
        for kind in [args.only] if args.only else ["sendgrid", "smtp"]:
            db_path = directory / f"{kind}.db"
            shutil.copyfile(template_db, db_path)
            r = run_path(kind, db_path, slug)
            rate = r["accepted"] / r["elapsed"] if r["elapsed"] else 0.0
            print(
                f"{kind:9} {r['status']:5} {r['accepted']:>8,} recipients in {r['elapsed']:6.2f} s"
                f" = {rate:9,.0f}/s  (ledger snapshot {r['ledger']:.2f} s;"
                f" server saw {r['server_count']:,}); peak memory {r['rss_mb']:.0f} MB;"
                f" CPU: sender {r['cpu']:.1f} s, fake server {r['server_cpu']:.1f} s"
            )


if __name__ == "__main__":
    main()
