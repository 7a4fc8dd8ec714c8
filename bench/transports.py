"""Transport micro-benchmarks: message build cost (spliced vs standard library), SMTP
messages per second into an aiosmtpd sink on 127.0.0.1 (in its own process, as a
real server would be), and SendGrid request build time.

    .venv/bin/python -m bench.transports [--messages 3000]
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.test_transports_outbox import stdlib_build

from digestmail.config import Settings
from digestmail.transports.base import MessageTemplate, Recipient
from digestmail.transports.mime import CompiledMessage
from digestmail.transports.sendgrid import _Body
from digestmail.transports.smtp import SMTPTransport

PARA = "<p>Analysis of the week’s policy developments, with links and commentary. " * 8
TEMPLATE = MessageTemplate(
    subject="Policy Digest 3.2 — for %%name%%",
    html="<html><body><p>Dear %%greeting_name:html%%,</p>\n"
    + (PARA + "</p>\n") * 40
    + '<a href="%%unsubscribe_url:html%%">Unsubscribe</a></body></html>',
    text="Dear %%greeting_name%%,\n\n"
    + ("Analysis of the week. " * 30 + "\n\n") * 30
    + "Unsubscribe: %%unsubscribe_url%%\n",
    from_addr="Policy Digest <digest@example.org>",
    reply_to="editors@example.org",
    headers={"List-Id": "Policy Digest <policy-digest.example.org>"},
    unsubscribe_mailto="mailto:unsubscribe@example.org",
    campaign_id=1,
)


def recipients(n: int) -> list[Recipient]:
    return [
        Recipient(
            f"reader{i}@example.net",
            {
                "name": f"Reader Zoë {i}" if i % 5 == 0 else f"Reader {i}",
                "greeting_name": f"Reader {i}",
                "unsubscribe_url": f"https://digest.example.org/unsubscribe/{'t' * 60}{i}",
            },
            subscriber_id=i,
            delivery_id=i,
        )
        for i in range(n)
    ]


def _sink(port_queue: Any, stop: Any) -> None:
    from tests.fakes.smtp import SMTPSink

    with SMTPSink(record=False) as sink:
        port_queue.put(sink.port)
        stop.wait()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=3000)
    args = parser.parse_args()
    rs = recipients(args.messages)
    compiled = CompiledMessage(TEMPLATE, domain="example.org")
    size = len(compiled.render(rs[0]).data)
    n = min(2000, len(rs))
    t0 = time.perf_counter()
    for r in rs[:n]:
        compiled.render(r)
    spliced = (time.perf_counter() - t0) / n
    m = min(300, len(rs))
    t0 = time.perf_counter()
    for r in rs[:m]:
        stdlib_build(TEMPLATE, r)
    stdlib = (time.perf_counter() - t0) / m
    print(f"message size: {size / 1024:.1f} KiB")
    print(
        f"build per message: spliced {spliced * 1e6:.0f} µs, standard library {stdlib * 1e6:.0f} µs"
    )

    body = _Body(TEMPLATE)
    import json

    t0 = time.perf_counter()
    payload = json.dumps(body.request(rs[:1000]))
    print(
        f"SendGrid request of 1000: {len(payload) / 1024:.0f} KiB JSON, "
        f"{(time.perf_counter() - t0) * 1e3:.1f} ms to build and serialise"
    )

    ctx = multiprocessing.get_context("spawn")
    ports: Any = ctx.Queue()
    stop = ctx.Event()
    proc = ctx.Process(target=_sink, args=(ports, stop), daemon=True)
    proc.start()
    port = ports.get(timeout=30)
    settings = Settings(
        transport="smtp",
        smtp_url=f"smtp://127.0.0.1:{port}",
        secret_key="benchmark-secret-key-" + "x" * 40,
    )
    transport = SMTPTransport(settings)
    try:
        transport.send_batch(TEMPLATE, rs[:50])  # connect the pool
        t0 = time.perf_counter()
        c0 = time.process_time()
        sent = 0
        for i in range(0, len(rs), 1000):
            result = transport.send_batch(TEMPLATE, rs[i : i + 1000])
            sent += len(result.accepted)
        elapsed = time.perf_counter() - t0
        cpu = time.process_time() - c0
    finally:
        transport.close()
        stop.set()
        proc.join(5)
    print(
        f"SMTP: {sent} messages in {elapsed:.2f} s = {sent / elapsed:.0f} messages/s "
        f"({settings.smtp_connections} connections); sender CPU {cpu / sent * 1e6:.0f} µs "
        "per message (the rest is the sink)"
    )


if __name__ == "__main__":
    main()
