"""Addresses the message builder must take, and the ones it must refuse."""

from __future__ import annotations

import email
from email import policy

import pytest

from digestmail.transports.base import MessageTemplate, Recipient
from digestmail.transports.mime import InvalidRecipient, build_message

TEMPLATE = MessageTemplate(
    subject="Digest",
    html="<p>Hello %%greeting_name:html%%</p>",
    text="Hello %%greeting_name%%",
    from_addr="Digest <digest@example.org>",
    reply_to="digest@example.org",
)


@pytest.mark.parametrize(
    "address", ["o'brien@example.com", "first.last+tag@example.com", "a_b-c@sub.example.co.uk"]
)
def test_valid_ascii_addresses_are_addressed(address: str) -> None:
    raw = build_message(TEMPLATE, Recipient(address, {"greeting_name": "Dear reader,"}), domain="x")
    msg = email.message_from_bytes(raw, policy=policy.default)
    assert msg["To"].addresses[0].addr_spec == address


@pytest.mark.parametrize(
    "address",
    ["two@at@example.com", "a b@example.com", "x@example.com\r\nBcc: y@example.com", "<x@y.z>"],
)
def test_addresses_that_could_break_the_header_are_refused(address: str) -> None:
    with pytest.raises(InvalidRecipient):
        build_message(TEMPLATE, Recipient(address), domain="x")
