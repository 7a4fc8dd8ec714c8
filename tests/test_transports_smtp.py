"""The SMTP transport against a real aiosmtpd server on 127.0.0.1."""

from __future__ import annotations

import datetime
import email
import logging
import re
import smtplib
import ssl
from collections.abc import Iterator
from email import policy
from pathlib import Path

import pytest

from digestmail.config import Settings
from digestmail.transports.base import MessageTemplate, Recipient, TransportError
from digestmail.transports.mime import CompiledMessage, dot_unstuff
from digestmail.transports.smtp import SMTPConfig, SMTPTransport
from tests.fakes.smtp import SMTPSink
from tests.test_transports_outbox import TEMPLATE as DOTTED
from tests.test_transports_outbox import parse, stdlib_build

# AUTH without TLS is what a loopback test wants; aiosmtpd warns about it.
pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")

TEMPLATE = MessageTemplate(
    subject="Policy Digest — issue 7",
    html="<p>Dear %%greeting_name:html%%,</p><p>…</p>"
    '<a href="%%unsubscribe_url:html%%">Unsubscribe</a>',
    text="Dear %%greeting_name%%,\n\nUnsubscribe: %%unsubscribe_url%%\n",
    from_addr="Policy Digest <digest@example.org>",
    reply_to="editors@example.org",
    headers={"List-Id": "Policy Digest <policy-digest.example.org>"},
    unsubscribe_mailto="mailto:unsubscribe@example.org",
    campaign_id=3,
)


def recipients(n: int) -> list[Recipient]:
    return [
        Recipient(
            f"reader{i}@example.net",
            {"greeting_name": f"Reader {i}", "unsubscribe_url": f"https://x.test/unsubscribe/t{i}"},
            subscriber_id=i,
            delivery_id=1000 + i,
        )
        for i in range(n)
    ]


def transport(url: str, **kw: object) -> SMTPTransport:
    settings = Settings(smtp_url=url, transport="smtp", smtp_timeout=5, smtp_connections=3)
    return SMTPTransport(settings, retry_delays=(0.05, 0.05), **kw)  # type: ignore[arg-type]


@pytest.fixture
def sink() -> Iterator[SMTPSink]:
    with SMTPSink() as s:
        yield s


def test_url_parsing() -> None:
    cfg = SMTPConfig.parse("smtp://us%40er:p%3Ass%2Fw@mail.example.org:587?starttls=true")
    assert (cfg.host, cfg.port, cfg.starttls, cfg.implicit_tls) == (
        "mail.example.org",
        587,
        True,
        False,
    )
    assert (cfg.username, cfg.password) == ("us@er", "p:ss/w")
    assert "p:ss" not in repr(cfg) and "p:ss" not in cfg.redacted()
    assert SMTPConfig.parse("smtps://u:p@mx.example.org").port == 465
    assert SMTPConfig.parse("smtp://mx.example.org").port == 25
    assert SMTPConfig.parse("smtp://mx.example.org").username is None
    assert SMTPConfig.parse("smtp://mx:587").starttls  # submission port implies STARTTLS
    assert not SMTPConfig.parse("smtp://mx:587?starttls=false").starttls
    for bad in (
        "http://x",
        "smtp://",
        "smtp://x?starttls=maybe",
        "smtps://x?starttls=true",
        "smtp://x?tls=1",
    ):
        with pytest.raises(ValueError) as err:
            SMTPConfig.parse(bad)
        assert "secret" not in str(err.value)


def test_sends_every_message_in_parallel_over_persistent_connections(sink: SMTPSink) -> None:
    t = transport(sink.url())
    try:
        first = t.send_batch(TEMPLATE, recipients(30))
        second = t.send_batch(TEMPLATE, recipients(30)[:6])
    finally:
        t.close()
    assert len(first.accepted) == 30 and not first.rejected
    assert len(second.accepted) == 6
    # three pooled connections, kept open across batches
    assert len(sink.peers) == 3
    got = sink.by_recipient()
    assert len(got) == 30 and sum(len(v) for v in got.values()) == 36
    ids = {a.message_id for a in first.accepted}
    assert len(ids) == 30
    msg = email.message_from_bytes(got["reader7@example.net"][0].data, policy=policy.default)
    assert msg["Message-ID"].strip("<>") in ids
    assert msg["From"] == "Policy Digest <digest@example.org>"
    assert msg["Reply-To"] == "editors@example.org"
    assert msg["To"] == "reader7@example.net"
    assert msg["List-Id"] == "Policy Digest <policy-digest.example.org>"
    assert msg["List-Unsubscribe"] == (
        "<https://x.test/unsubscribe/t7>, <mailto:unsubscribe@example.org>"
    )
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert got["reader7@example.net"][0].mail_from == "digest@example.org"
    assert msg.get_content_type() == "multipart/alternative"
    text, html = (p.get_content() for p in msg.iter_parts())
    assert "Dear Reader 7," in text and "t7" in text
    assert "Dear Reader 7," in html and "t6" not in html
    date = email.utils.parsedate_to_datetime(msg["Date"])
    assert abs(date - datetime.datetime.now(datetime.UTC)).total_seconds() < 60


def test_5xx_is_a_permanent_rejection_and_4xx_is_retried(sink: SMTPSink) -> None:
    sink.reject("reader1@example.net")
    sink.temp_fail("reader2@example.net", times=2)  # accepted on the 3rd attempt
    sink.temp_fail("reader3@example.net", times=5)  # never within 3 attempts
    t = transport(sink.url())
    try:
        result = t.send_batch(TEMPLATE, recipients(6))
    finally:
        t.close()
    rejected = {r.email: r for r in result.rejected}
    assert set(rejected) == {"reader1@example.net", "reader3@example.net"}
    assert rejected["reader1@example.net"].permanent
    assert rejected["reader1@example.net"].error.startswith("550")
    assert not rejected["reader3@example.net"].permanent
    assert rejected["reader3@example.net"].error.startswith("451")
    accepted = {a.email for a in result.accepted}
    assert accepted == {f"reader{i}@example.net" for i in (0, 2, 4, 5)}
    assert len(sink.by_recipient()["reader2@example.net"]) == 1


def test_reconnects_after_a_dropped_connection(sink: SMTPSink) -> None:
    sink.drop_connection("reader4@example.net", times=1)
    t = transport(sink.url())
    try:
        result = t.send_batch(TEMPLATE, recipients(9))
    finally:
        t.close()
    assert len(result.accepted) == 9, result.rejected
    assert len(sink.by_recipient()["reader4@example.net"]) == 1
    assert len(sink.peers) == 4  # one connection was opened again


def test_unreachable_server_fails_the_batch_temporarily() -> None:
    with SMTPSink() as s:
        url = s.url()
    t = transport(url)
    try:
        with pytest.raises(TransportError) as err:
            t.send_batch(TEMPLATE, recipients(3))
    finally:
        t.close()
    assert not err.value.permanent
    assert "cannot connect" in str(err.value)


def test_auth_plain(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    password = "s3cr@t:/pw"
    with SMTPSink(auth=("mailer", password)) as s:
        t = transport(s.url(user="mailer", password=password))
        try:
            result = t.send_batch(TEMPLATE, recipients(4))
        finally:
            t.close()
        assert len(result.accepted) == 4
        assert s.auth_attempts and all(ok for _, ok in s.auth_attempts)

        bad = transport(s.url(user="mailer", password="wrong-" + password))
        try:
            with pytest.raises(TransportError) as err:
                bad.send_batch(TEMPLATE, recipients(2))
        finally:
            bad.close()
        assert err.value.permanent
        assert "refused the credentials" in str(err.value)
        assert password not in str(err.value)
    assert password not in caplog.text


def _self_signed(tmp_path: Path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    crypto = pytest.importorskip("cryptography")
    del crypto
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_pem = tmp_path / "cert.pem"
    key_pem = tmp_path / "key.pem"
    cert_pem.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_pem.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(cert_pem, key_pem)
    client = ssl.create_default_context(cafile=str(cert_pem))
    return server, client


def test_starttls_with_auth(tmp_path: Path) -> None:
    server_ctx, client_ctx = _self_signed(tmp_path)
    with SMTPSink(auth=("mailer", "pw"), tls_context=server_ctx) as s:
        url = f"smtp://mailer:pw@localhost:{s.port}?starttls=true"
        t = transport(url, ssl_context=client_ctx)
        try:
            result = t.send_batch(TEMPLATE, recipients(3))
        finally:
            t.close()
        assert len(result.accepted) == 3
        # without STARTTLS the server refuses to go on
        plain = transport(f"smtp://mailer:pw@localhost:{s.port}?starttls=false")
        try:
            with pytest.raises(TransportError):
                plain.send_batch(TEMPLATE, recipients(1))
        finally:
            plain.close()


# Values that put a "." at the start of an encoded line, where SMTP needs it doubled.
DOT_VALUES = {
    "name": "Zoë .Dot",
    "greeting_name": ".Zoë\n.second line\n.",
    "email": "dots@example.net",
    "unsubscribe_url": "https://digest.example.org/unsubscribe/." + "tok" * 30,
    "webview_url": "https://digest.example.org/issues/3-2?r=1",
}


def _same_ids(data: bytes) -> bytes:
    """The message with its Date and Message-ID, which differ between two renders, blanked."""
    return re.sub(rb"(?m)^(Date|Message-ID): [^\r]*", rb"\1: -", data)


def test_wire_form_is_the_message_dot_stuffed_once() -> None:
    compiled = CompiledMessage(DOTTED, domain="example.org")
    r = Recipient("dots@example.net", DOT_VALUES)
    plain = compiled.render(r).data
    wire = compiled.render_wire(r)
    assert wire.wire.endswith(b"\r\n.\r\n")
    # exactly what smtplib.SMTP.data would have sent for the plain message
    stuffed = re.sub(rb"(?m)^\.", b"..", _same_ids(plain)) + b".\r\n"
    assert _same_ids(wire.wire) == stuffed
    assert stuffed.count(b"\r\n..") >= 4  # literals and values both needed it
    assert _same_ids(dot_unstuff(wire.wire)) == _same_ids(plain)
    assert wire.size == len(plain)


def test_received_message_equals_a_straightforward_build(sink: SMTPSink) -> None:
    r = Recipient("dots@example.net", DOT_VALUES)
    t = transport(sink.url())
    try:
        result = t.send_batch(DOTTED, [r])
        plain = t.compiled(DOTTED).render(r).data  # same MIME boundary
    finally:
        t.close()
    assert [a.email for a in result.accepted] == [r.email]
    (received,) = sink.messages
    assert _same_ids(received.data) == _same_ids(plain)
    ours, ref = parse(received.data), parse(stdlib_build(DOTTED, r))
    assert ours["Message-ID"] == f"<{result.accepted[0].message_id}>"
    assert ours["Subject"] == ref["Subject"] == "Policy Digest für Zoë .Dot — Ausgabe 3.2"
    parts = [p.get_content() for p in ours.iter_parts()]
    assert parts == [p.get_content() for p in ref.iter_parts()]
    assert "\r\n.dot at line start\r\n" in parts[0] and "\r\n.second line\r\n" in parts[0]
    assert b"\r\n" in received.data and b"\n" not in received.data.replace(b"\r\n", b"")


def _data(client: smtplib.SMTP, payload: bytes) -> tuple[int, bytes]:
    client.mail("a@example.org")
    client.rcpt("b@example.net")
    assert client.docmd("DATA")[0] == 354
    client.send(payload)
    return client.getreply()


def test_sink_reads_data_as_an_mta_does(sink: SMTPSink) -> None:
    """The bulk DATA reader keeps aiosmtpd's semantics (the benchmark relies on it)."""
    with smtplib.SMTP(sink.host, sink.port) as client:
        client.ehlo()
        assert _data(client, b".\r\n")[0] == 250  # empty message
        assert _data(client, b"one\r\n.\r\n")[0] == 250
        assert _data(client, b"..a\r\n...\r\nb.\r\n.c\r\n.\r\n")[0] == 250
        assert _data(client, b"x" * 1100 + b"\r\n.\r\n")[0] == 500  # line too long
        # a command sent right behind the terminator is kept for the command loop
        client.mail("a@example.org")
        client.rcpt("b@example.net")
        assert client.docmd("DATA")[0] == 354
        client.send(b"last\r\n.\r\nNOOP\r\n")
        assert client.getreply()[0] == 250
        assert client.getreply()[0] == 250  # the NOOP
    assert [m.data for m in sink.messages] == [
        b"",
        b"one\r\n",
        b".a\r\n..\r\nb.\r\nc\r\n",
        b"last\r\n",
    ]
    assert sink.count == 4


def test_an_unusable_sender_stops_the_batch_before_any_command(sink: SMTPSink) -> None:
    t = transport(sink.url())
    try:
        for sender in ("Digest <dïgest@example.org>", "no address here"):
            bad = MessageTemplate(subject="s", html="h", text="t", from_addr=sender)
            with pytest.raises(TransportError) as err:
                t.send_batch(bad, recipients(2))
            assert err.value.permanent and "sender" in str(err.value)
    finally:
        t.close()
    assert sink.count == 0
