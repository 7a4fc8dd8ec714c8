"""The spliced message (outbox and SMTP) against a straightforward standard-library build."""

from __future__ import annotations

import email
import html
from email import policy
from email.header import decode_header, make_header
from email.headerregistry import Address
from email.message import EmailMessage
from pathlib import Path

import pytest

from digestmail.config import Settings
from digestmail.placeholders import Template
from digestmail.transports.base import MessageTemplate, Recipient
from digestmail.transports.mime import CompiledMessage, build_message, list_unsubscribe
from digestmail.transports.outbox import OutboxTransport

LONG = "Ökonomie und Gesellschaft: " + "sehr lange Zeile ohne Umbruch " * 20
TEMPLATE = MessageTemplate(
    subject="Policy Digest für %%name%% — Ausgabe 3.2",
    html=(
        "<html><body><p>Liebe(r) %%greeting_name:html%%,</p>\n"
        f"<p>{LONG}</p><p>=3D not an escape, trailing space \n"
        '.a dot line</p>\n<a href="%%unsubscribe_url:html%%">Abbestellen</a>'
        '<a href="%%webview_url:html%%">Web</a></body></html>'
    ),
    text=(
        "Liebe(r) %%greeting_name%%,\n\n"
        f"{LONG}\n.dot at line start\nFrom the editors \t\n"
        "Abbestellen: %%unsubscribe_url%%"
    ),
    from_addr="Institut für Politik <digest@example.org>",
    reply_to="Redaktion <editors@example.org>",
    headers={"List-Id": "Policy Digest <policy-digest.example.org>"},
    unsubscribe_mailto="mailto:unsubscribe@example.org?subject=unsubscribe",
)

NAMES = [
    "Ada Lovelace",
    "Zoë Ångström-Øster",
    "Dr. O'Brien, Jr.",
    "李小龍",
    'Quote "me" <not an address>',
    "José Ñúñez de la Peña y Fernández-González Rodríguez Villanueva",
    "",
]


def recipient(i: int, name: str) -> Recipient:
    return Recipient(
        f"r{i}@example.net",
        {
            "name": name,
            "greeting_name": name or "Leser",
            "email": f"r{i}@example.net",
            "unsubscribe_url": "https://digest.example.org/unsubscribe/" + "tok" * 40 + str(i),
            "webview_url": f"https://digest.example.org/issues/3-2?r={i}&x=<y>",
        },
    )


def stdlib_build(template: MessageTemplate, r: Recipient) -> bytes:
    """The straightforward build the spliced one must equal once parsed."""
    # 998: the default 78 makes the standard library encode a long List-Unsubscribe URL.
    pol = policy.SMTP.clone(max_line_length=998)
    msg = EmailMessage(policy=pol)
    msg["Subject"] = Template.parse(template.subject).substitute(r.values)
    msg["From"] = template.from_addr
    name = r.values.get("name", "")
    msg["To"] = Address(display_name=name, addr_spec=r.email)
    if template.reply_to:
        msg["Reply-To"] = template.reply_to
    msg["Message-ID"] = email.utils.make_msgid(domain="example.org")
    for k, v in template.headers.items():
        msg[k] = v
    unsub = list_unsubscribe(template, r)
    if template.bulk and unsub:
        msg["List-Unsubscribe"] = unsub
        msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    msg.set_content(Template.parse(template.text).substitute(r.values), cte="quoted-printable")
    msg.add_alternative(
        Template.parse(template.html).substitute(r.values), subtype="html", cte="quoted-printable"
    )
    return msg.as_bytes()


def parse(data: bytes) -> EmailMessage:
    msg = email.message_from_bytes(data, policy=policy.default)
    assert isinstance(msg, EmailMessage)
    return msg


def rfc2047(raw: str) -> str:
    """Decoded as RFC 2047 says (adjacent encoded words join without the space)."""
    return str(make_header(decode_header(raw)))


@pytest.mark.parametrize("name", NAMES)
def test_spliced_message_equals_a_straightforward_build(name: str) -> None:
    r = recipient(3, name)
    spliced = CompiledMessage(TEMPLATE, domain="example.org").render(r).data
    ours, ref = parse(spliced), parse(stdlib_build(TEMPLATE, r))
    assert not ours.defects and all(not p.defects for p in ours.walk())
    for header in (
        "Subject",
        "From",
        "Reply-To",
        "List-Id",
        "List-Unsubscribe",
        "List-Unsubscribe-Post",
        "MIME-Version",
    ):
        assert ours[header] == ref[header], header
    assert ours["To"].addresses[0].addr_spec == r.email
    raw_to = spliced.decode().split("\r\nTo: ", 1)[1].split(f" <{r.email}>", 1)[0]
    if name and name.isascii():
        assert ours["To"] == ref["To"]
    elif name:
        # the standard library adds a space between adjacent encoded words in an
        # address (against RFC 2047); mail programs decode them exactly
        assert rfc2047(raw_to.replace("\r\n", "")) == name
        assert ours["To"].addresses[0].display_name.replace(" ", "") == name.replace(" ", "")
    assert ours.get_content_type() == "multipart/alternative"
    ours_parts = [(p.get_content_type(), p.get_content()) for p in ours.iter_parts()]
    ref_parts = [(p.get_content_type(), p.get_content()) for p in ref.iter_parts()]
    assert [t for t, _ in ours_parts] == ["text/plain", "text/html"]
    assert ours_parts == ref_parts
    assert html.escape(name or "Leser") in ours_parts[1][1]
    # RFC 5322 / 2045 line limits
    lines = spliced.split(b"\r\n")
    assert all(b"\n" not in line and b"\r" not in line for line in lines)
    body = spliced.split(b"\r\n\r\n", 1)[1]
    assert max(len(line) for line in body.split(b"\r\n")) <= 76
    assert max(len(line) for line in lines) <= 998
    assert spliced.isascii()


def test_message_ids_are_unique_and_headers_cannot_be_injected() -> None:
    compiled = CompiledMessage(TEMPLATE, domain="example.org")
    evil = recipient(1, "Eve\r\nBcc: victim@example.com")
    msgs = [compiled.render(evil) for _ in range(50)]
    assert len({m.message_id for m in msgs}) == 50
    parsed = parse(msgs[0].data)
    assert parsed["Bcc"] is None
    assert parsed["Message-ID"] == f"<{msgs[0].message_id}>"


def test_one_off_mail_has_no_list_unsubscribe() -> None:
    t = MessageTemplate(
        subject="Bitte bestätigen", html="<p>x</p>", text="x", from_addr="d@example.org", bulk=False
    )
    msg = parse(build_message(t, Recipient("a@example.net", {}), domain="example.org"))
    assert msg["List-Unsubscribe"] is None and msg["List-Unsubscribe-Post"] is None
    assert msg["Subject"] == "Bitte bestätigen"


def test_outbox_writes_one_complete_eml_per_recipient(tmp_path: Path) -> None:
    settings = Settings(outbox_dir=tmp_path / "out")
    transport = OutboxTransport(settings)
    batch = [recipient(i, n) for i, n in enumerate(NAMES)]
    bad = Recipient("not an address", {})
    result = transport.send_batch(TEMPLATE, [*batch, bad])
    assert [r.email for r in result.rejected] == ["not an address"]
    assert result.rejected[0].permanent
    files = sorted((tmp_path / "out").glob("*.eml"))
    assert len(files) == len(NAMES) == len(result.accepted)
    assert not list((tmp_path / "out").glob(".*"))
    by_to = {parse(f.read_bytes())["To"].addresses[0].addr_spec: f for f in files}
    assert set(by_to) == {r.email for r in batch}
    msg = parse(by_to["r1@example.net"].read_bytes())
    assert msg["Message-ID"] == f"<{result.accepted[1].message_id}>"
    assert "Zoë" in msg.get_body(("plain",)).get_content()  # type: ignore[union-attr]
