"""A batch of 1,000 SendGrid events, signed as SendGrid signs them, verified and stored.

Run: ``.venv/bin/python bench/events.py [--events 1000] [--batches 10]``.

A fresh SQLite database gets 1,000 active subscribers and a campaign with a ledger row
each; every batch is a realistic mix (deliveries, opens, clicks, deferrals, a few
bounces, complaints and unsubscribes) carrying the campaign's custom args, with fresh
event ids. Two measurements:

- over HTTP: the real app (uvicorn, in a process of its own as in production) answers
  each signed POST of ``/hooks/sendgrid/events``; the figure is the time from sending
  the request to the 2xx answer, i.e. verified, parsed, stored and the policy applied;
- in process, split: signature check, parsing and normalising, storing, the policy.

Target (2 cores, SQLite): a 1,000-event batch in under 300 ms.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, cast

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # tests.signing

SUBSCRIBERS = 1000
MIX = [
    ("delivered", 40),
    ("open", 25),
    ("click", 10),
    ("processed", 12),
    ("deferred", 5),
    ("bounce", 4),
    ("spamreport", 1),
    ("unsubscribe", 1),
    ("dropped", 2),
]


def _settings(db_path: Path, key: str) -> Any:
    from digestmail.config import Settings

    return Settings(
        database_url=f"sqlite:///{db_path}",
        secret_key="bench-secret-key",
        sendgrid_webhook_key=key,
        log_level="WARNING",
    )


def prepare(directory: Path) -> tuple[Path, int, list[tuple[int, int, str]]]:
    """A migrated database with subscribers, one campaign and its ledger."""
    from sqlalchemy import Table, insert, select

    from digestmail.db import Database
    from digestmail.migrate import upgrade
    from digestmail.models import Campaign, Delivery, Issue, Subscriber, utcnow

    path = directory / "bench.db"
    db = Database(f"sqlite:///{path}")
    upgrade(db.engine)
    now = utcnow()
    subs = cast(Table, Subscriber.__table__)
    with db.engine.begin() as conn:
        conn.execute(
            insert(subs),
            [
                {
                    "email": f"reader{i}@example.com",
                    "email_key": f"reader{i}@example.com",
                    "status": "active",
                    "source": "import",
                    "soft_bounce_score": 0,
                    "created_at": now,
                    "updated_at": now,
                }
                for i in range(SUBSCRIBERS)
            ],
        )
        issue_id = conn.execute(
            insert(cast(Table, Issue.__table__)).values(
                slug="bench",
                publication="Bench",
                volume="1",
                title="t",
                source="s",
                subject="s",
                preheader="",
                html="h",
                text="t",
                status="sent",
                created_at=now,
            )
        ).inserted_primary_key
        assert issue_id is not None
        campaign_id = conn.execute(
            insert(cast(Table, Campaign.__table__)).values(
                issue_id=issue_id[0],
                status="sent",
                transport="sendgrid",
                is_test=False,
                created_at=now,
                started_at=now,
            )
        ).inserted_primary_key
        assert campaign_id is not None
        cid = int(campaign_id[0])
        rows = conn.execute(select(subs.c.id, subs.c.email)).all()
        conn.execute(
            insert(cast(Table, Delivery.__table__)),
            [
                {
                    "campaign_id": cid,
                    "subscriber_id": r.id,
                    "email": r.email,
                    "state": "accepted",
                    "attempts": 1,
                    "temp_failures": 0,
                }
                for r in rows
            ],
        )
        ledger = conn.execute(
            select(
                cast(Table, Delivery.__table__).c.id,
                cast(Table, Delivery.__table__).c.subscriber_id,
                cast(Table, Delivery.__table__).c.email,
            )
        ).all()
    db.dispose()
    return path, cid, [(r.id, r.subscriber_id, r.email) for r in ledger]


def batch(n: int, round_: int, cid: int, ledger: list[tuple[int, int, str]]) -> bytes:
    import json

    names = [name for name, weight in MIX for _ in range(weight)]
    now = int(time.time())
    events = []
    for i in range(n):
        did, sid, email = ledger[(i * 7 + round_ * 13) % len(ledger)]
        name = names[i % len(names)]
        event: dict[str, Any] = {
            "email": email,
            "timestamp": now,
            "event": name,
            "sg_event_id": f"bench-{round_}-{i}-aGVsbG8gd29ybGQ",
            "sg_message_id": f"14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.{i}",
            "smtp-id": f"<14c5d75ce93.dfd.64b469@ismtpd-555.{i}>",
            "category": ["Bench", "bench"],
            "campaign_id": str(cid),
            "subscriber_id": str(sid),
            "delivery_id": str(did),
        }
        if name == "bounce":
            event.update(type="bounce", status="5.1.1", reason="550 5.1.1 User unknown")
        elif name == "dropped":
            event.update(reason="Bounced Address")
        elif name == "deferred":
            event.update(response="400 try again later", attempt="2")
        elif name == "click":
            event.update(url="https://digest.example.org/issues/bench", useragent="Mozilla/5.0")
        elif name == "open":
            event.update(useragent="Mozilla/5.0 (Windows NT 10.0)", ip="192.0.2.1")
        elif name == "delivered":
            event.update(response="250 OK", ip="192.0.2.9", tls=1)
        events.append(event)
    return json.dumps(events).encode()


def _serve(db_path: str, key: str, port: int) -> None:
    import uvicorn

    from digestmail.web import create_app

    uvicorn.run(create_app(_settings(Path(db_path), key)), port=port, log_level="warning")


def over_http(db_path: Path, key: str, signer: Any, bodies: list[bytes]) -> list[float]:
    import socket

    import httpx

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = mp.get_context("spawn").Process(
        target=_serve, args=(str(db_path), key, port), daemon=True
    )
    server.start()
    url = f"http://127.0.0.1:{port}/hooks/sendgrid/events"
    times = []
    try:
        with httpx.Client(timeout=60) as client:
            deadline = time.monotonic() + 30
            while True:
                try:
                    client.get(f"http://127.0.0.1:{port}/healthz")
                    break
                except httpx.TransportError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.1)
            for body in bodies:
                headers = signer.headers(body)
                start = time.perf_counter()
                response = client.post(url, content=body, headers=headers)
                times.append(time.perf_counter() - start)
                assert response.status_code == 200, response.text
                assert response.json()["stored"] == len(json_list(body))
    finally:
        server.terminate()
        server.join(10)
    return times


def json_list(body: bytes) -> list[Any]:
    import json

    value = json.loads(body)
    assert isinstance(value, list)
    return value


def in_process(db_path: Path, key: str, signer: Any, bodies: list[bytes]) -> dict[str, list[float]]:
    from digestmail.db import Database
    from digestmail.events import apply, store
    from digestmail.events.normalise import parse_sendgrid
    from digestmail.events.webhook import verify

    settings = _settings(db_path, key)
    db = Database(settings.database_url)
    split: dict[str, list[float]] = {"verify": [], "parse": [], "store": [], "policy": []}
    for body in bodies:
        headers = signer.headers(body)
        t0 = time.perf_counter()
        verify(
            key,
            body,
            headers["X-Twilio-Email-Event-Webhook-Signature"],
            headers["X-Twilio-Email-Event-Webhook-Timestamp"],
        )
        t1 = time.perf_counter()
        parsed = parse_sendgrid(body)
        t2 = time.perf_counter()
        with db.session() as session:
            new = store(session, settings, parsed.events)
        t3 = time.perf_counter()
        with db.session() as session:
            apply(session, settings, new)
        t4 = time.perf_counter()
        assert len(new) == len(parsed.events)
        for name, took in zip(split, (t1 - t0, t2 - t1, t3 - t2, t4 - t3), strict=True):
            split[name].append(took)
    db.dispose()
    return split


def _ms(values: list[float]) -> str:
    ordered = sorted(values)
    p90 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.9))]
    return f"median {statistics.median(values) * 1000:6.1f} ms, p90 {p90 * 1000:6.1f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--batches", type=int, default=10)
    args = parser.parse_args()
    from tests.signing import Signer

    signer = Signer()
    key = signer.public_key
    directory = Path(tempfile.mkdtemp(prefix="digestmail-bench-events-"))
    try:
        db_path, cid, ledger = prepare(directory)
        http_bodies = [batch(args.events, r, cid, ledger) for r in range(args.batches)]
        local_bodies = [
            batch(args.events, r, cid, ledger) for r in range(1000, 1000 + args.batches)
        ]
        size = sum(map(len, http_bodies)) / len(http_bodies) / 1024
        print(f"{args.events} events a batch ({size:.0f} KiB), {args.batches} batches, SQLite")
        times = over_http(db_path, key, signer, http_bodies)
        print(f"  over HTTP, signed POST to 2xx answer: {_ms(times)}")
        split = in_process(db_path, key, signer, local_bodies)
        for name, values in split.items():
            print(f"  in process, {name:7}: {_ms(values)}")
        total = [sum(parts) for parts in zip(*split.values(), strict=True)]
        print(f"  in process, total  : {_ms(total)}")
        verdict = "meets" if statistics.median(times) < 0.3 else "MISSES"
        print(f"  target: under 300 ms a batch over HTTP: {verdict}")
    finally:
        shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    main()
