"""Transport micro-benchmarks on the real example issue (``examples/vol-4.1.md``
rendered by ``render_issue``): message build cost (spliced vs standard library), SMTP
messages per second into an aiosmtpd sink on 127.0.0.1 (in its own process, as a
real server would be) with the CPU each side spends per message, and SendGrid request
build time.

    .venv/bin/python -m bench.transports [--messages 3000] [--connections N]
"""

from __future__ import annotations

import argparse
import multiprocessing
import re
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.test_transports_outbox import stdlib_build

from digestmail.config import Settings
from digestmail.content.source import load_issue
from digestmail.render import recipient_values, render_issue
from digestmail.transports.base import MessageTemplate, Recipient
from digestmail.transports.mime import CompiledMessage
from digestmail.transports.sendgrid import _Body
from digestmail.transports.smtp import SMTPTransport

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "vol-4.1.md"
SETTINGS = Settings(
    base_url="https://digest.example.org", secret_key="bench-only-secret-" + "x" * 32
)


def template() -> MessageTemplate:
    """The message a campaign of the example issue sends (as ``campaigns`` builds it)."""
    rendered = render_issue(load_issue(EXAMPLE), SETTINGS)
    return MessageTemplate(
        subject=rendered.subject,
        html=rendered.html,
        text=rendered.text,
        from_addr="Policy Digest <digest@example.org>",
        reply_to="editors@example.org",
        headers={"List-Id": "Policy Digest <policy-digest.example.org>"},
        unsubscribe_mailto="mailto:unsubscribe@example.org?subject=unsubscribe",
        campaign_id=1,
    )


def recipients(n: int) -> list[Recipient]:
    out = []
    for i in range(n):
        email = f"reader{i}@example.net"
        values = recipient_values(
            SETTINGS,
            name=f"Reader Zoë {i}" if i % 5 == 0 else f"Reader {i}",
            email=email,
            # as long as a real signed token
            unsubscribe_url=f"https://digest.example.org/unsubscribe/{'t' * 60}{i}",
            webview_url="https://digest.example.org/issues/vol-4-1",
        )
        out.append(Recipient(email, values, subscriber_id=i, delivery_id=i))
    return out


def _sink(queue: Any, mark: Any, stop: Any) -> None:
    """The sink in its own process; reports its CPU seconds between ``mark`` and ``stop``."""
    from tests.fakes.smtp import SMTPSink

    with SMTPSink(record=False) as sink:
        queue.put(sink.port)
        mark.wait()
        c0 = time.process_time()
        count0 = sink.count
        stop.wait()
        queue.put((time.process_time() - c0, sink.count - count0))


def per_call(fn: Any, items: list[Any]) -> float:
    t0 = time.perf_counter()
    for item in items:
        fn(item)
    return (time.perf_counter() - t0) / len(items)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=3000)
    parser.add_argument("--connections", type=int, default=None, help="SMTP pool size")
    args = parser.parse_args()
    tpl = template()
    rs = recipients(args.messages)
    compiled = CompiledMessage(tpl, domain="example.org")
    data = compiled.render(rs[0]).data
    spliced = per_call(compiled.render, rs[:2000])
    wire = per_call(compiled.render_wire, rs[:2000])
    # what smtplib.SMTP.data does to every message it is given
    stuffing = per_call(lambda d: re.sub(rb"(?m)^\.", b"..", d), [data] * 200)
    stdlib = per_call(lambda r: stdlib_build(tpl, r), rs[:300])
    lines = data.count(b"\r\n")
    print(f"message: {len(data) / 1024:.1f} KiB, {lines} lines ({EXAMPLE.name})")
    print(
        f"build per message: spliced {spliced * 1e6:.0f} µs, wire form (dot-stuffed) "
        f"{wire * 1e6:.0f} µs, standard library {stdlib * 1e6:.0f} µs; "
        f"smtplib's dot-stuffing alone {stuffing * 1e6:.0f} µs"
    )

    body = _Body(tpl)
    t0 = time.perf_counter()
    payload = body.request(rs[:1000])  # the JSON text, as posted
    print(
        f"SendGrid request of 1000: {len(payload) / 1024:.0f} KiB JSON, "
        f"{(time.perf_counter() - t0) * 1e3:.1f} ms to build and serialise"
    )

    ctx = multiprocessing.get_context("spawn")
    queue: Any = ctx.Queue()
    mark, stop = ctx.Event(), ctx.Event()
    proc = ctx.Process(target=_sink, args=(queue, mark, stop), daemon=True)
    proc.start()
    port = queue.get(timeout=30)
    extra = {"smtp_connections": args.connections} if args.connections else {}
    settings = Settings(
        transport="smtp",
        smtp_url=f"smtp://127.0.0.1:{port}",
        secret_key="benchmark-secret-key-" + "x" * 40,
        **extra,
    )
    transport = SMTPTransport(settings)
    try:
        transport.send_batch(tpl, rs[:50])  # connect the pool
        mark.set()
        t0 = time.perf_counter()
        c0 = time.process_time()
        sent = 0
        for i in range(0, len(rs), 1000):
            result = transport.send_batch(tpl, rs[i : i + 1000])
            sent += len(result.accepted)
        elapsed = time.perf_counter() - t0
        cpu = time.process_time() - c0
    finally:
        transport.close()
        stop.set()
    sink_cpu, received = queue.get(timeout=30)
    proc.join(5)
    print(
        f"SMTP: {sent} messages in {elapsed:.2f} s = {sent / elapsed:.0f} messages/s "
        f"({settings.smtp_connections} connections); CPU per message: sender "
        f"{cpu / sent * 1e6:.0f} µs, sink {sink_cpu / max(received, 1) * 1e6:.0f} µs "
        f"({received} received)"
    )


if __name__ == "__main__":
    main()
