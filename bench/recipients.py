"""What one recipient costs the sender: claim, placeholder values, SendGrid JSON.

Run: ``.venv/bin/python bench/recipients.py [--n 20000] [--batch 1000]``. A SQLite
database gets N active subscribers and a started campaign; then, batch by batch as the
send loop does, the ledger claims the recipients (one transaction a batch, each
recipient's values built on the way) and the SendGrid request body is built and
serialised as the client sends it. As in the sender, the objects alive before the
measurement are frozen for the garbage collector (``gc.freeze``, see
``campaigns/sender.py``). Printed per recipient: the claim without values,
the values alone, the claim with values, and the JSON. Target: claim + values + JSON
under 5 µs per recipient. Also printed, apart: recording each batch's answer (all
accepted, one message id), the ledger's other write per recipient.

The figures are CPU time of this process (``time.process_time``), not wall time: on a
machine shared with other work the wall clock counts their time too. The last line
calibrates: how long this machine takes, in the same measure, for a fixed piece of
pure-Python work (compare it across machines before comparing the figures).
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import sys
import tempfile
import time
import timeit
from inspect import signature
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.send import BASE_URL, SECRET, prepare  # noqa: E402

from digestmail import campaigns  # noqa: E402
from digestmail.campaigns.ledger import Ledger  # noqa: E402
from digestmail.campaigns.message import RecipientValues, load_issue, message_template  # noqa: E402
from digestmail.config import Settings  # noqa: E402
from digestmail.db import Database  # noqa: E402
from digestmail.models import utcnow  # noqa: E402
from digestmail.transports.base import Accepted, BatchResult, Recipient  # noqa: E402
from digestmail.transports.sendgrid import _Body  # noqa: E402


def claim_all(
    db: Database, settings: Settings, slug: str, batch: int, values: bool
) -> tuple[float, float]:
    """Seconds spent claiming every recipient of a new campaign, batch by batch, and
    recording each batch as accepted (as the send loop does, in the transaction of the
    next claim)."""
    cid = campaigns.create_campaign(db, settings, slug, again=True)
    # (The ledger takes the settings since bounce tracking; runs on older code too.)
    extra = {"settings": settings} if "settings" in signature(Ledger).parameters else {}
    ledger = Ledger(cid, batch_size=batch, recipient_retry_delays=(), **extra)
    if values:
        personalise = RecipientValues(settings, slug).recipient
    else:
        personalise = lambda did, sid, email, _: Recipient(email, {}, sid, did)  # noqa: E731
    with db.engine.begin() as conn:
        ledger.snapshot(conn, utcnow())
    claiming = recording = 0.0
    answer = None
    while True:
        with db.engine.begin() as conn:
            if answer is not None:
                start = time.process_time()
                ledger.record(conn, *answer)
                recording += time.process_time() - start
            start = time.process_time()
            claim = ledger.claim(conn, personalise)
            claiming += time.process_time() - start
        if claim.batch is None:
            campaigns.cancel_campaign(db, cid)  # so that the next round may start one
            return claiming, recording
        # The transport's answer: one message id for the whole request, as SendGrid's.
        accepted = [Accepted(r.email, "msg-1") for r in claim.batch.recipients]
        answer = (claim.batch, BatchResult(accepted=accepted))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    n = args.n
    with tempfile.TemporaryDirectory(prefix="digestmail-bench-") as tmp:
        path = Path(tmp) / "bench.db"
        slug = prepare(path, n)
        settings = Settings(
            database_url=f"sqlite:///{path}",
            base_url=BASE_URL,
            secret_key=SECRET,
            transport="sendgrid",
            sendgrid_api_key="SG.bench",
        )
        db = Database(settings.database_url)
        bare, full, build, dump, record = [], [], [], [], []
        template = message_template(settings, load_issue(db, slug), 1)
        gc.freeze()  # what the send loop does before its first claim
        for _ in range(args.runs):
            claiming, recording = claim_all(db, settings, slug, args.batch, values=False)
            bare.append(claiming / n)
            record.append(recording / n)
            full.append(claim_all(db, settings, slug, args.batch, values=True)[0] / n)
            values = RecipientValues(settings, slug)
            rows = [(i + 1, f"reader{i}@example.com", f"Reader {i}") for i in range(n)]
            start = time.process_time()
            recipients = [values.recipient(s, s, e, nm) for s, e, nm in rows]
            build.append((time.process_time() - start) / n)
            body = _Body(template)
            start = time.process_time()
            for i in range(0, n, args.batch):
                payload = body.request(recipients[i : i + args.batch])
                if not isinstance(payload, str):  # before it wrote the JSON itself
                    json.dumps(payload)
            dump.append((time.process_time() - start) / n)
        db.dispose()

    def us(samples: list[float]) -> str:
        return f"{statistics.median(samples) * 1e6:5.2f} µs"

    total = statistics.median(full) + statistics.median(dump)
    calibration = min(
        timeit.repeat("sum(range(1000))", number=2000, repeat=5, timer=time.process_time)
    )
    print(f"{n:,} recipients in batches of {args.batch}, median of {args.runs} runs:")
    print(f"  claim without values {us(bare)}")
    print(f"  values alone         {us(build)}")
    print(f"  claim with values    {us(full)}")
    print(f"  SendGrid JSON        {us(dump)}")
    print(f"  claim + values + JSON {total * 1e6:5.2f} µs per recipient (target < 5 µs)")
    print(f"  recording the answer  {us(record)} (apart: after the transport, not in the target)")
    print(f"calibration: sum(range(1000)) takes {calibration / 2000 * 1e6:.1f} µs of CPU here")


if __name__ == "__main__":
    main()
