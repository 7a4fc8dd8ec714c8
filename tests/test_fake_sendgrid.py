"""The fake SendGrid refuses what SendGrid documents as refused, in SendGrid's shape."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from tests.fakes.sendgrid import FakeSendGrid

KEY = "SG.k"


@pytest.fixture
def fake() -> Iterator[FakeSendGrid]:
    with FakeSendGrid(api_key=KEY) as f:
        yield f


def good(n: int = 2) -> dict[str, Any]:
    return {
        "personalizations": [
            {"to": [{"email": f"r{i}@example.net"}], "custom_args": {"subscriber_id": str(i)}}
            for i in range(n)
        ],
        "from": {"email": "d@example.org"},
        "subject": "Hi",
        "content": [{"type": "text/plain", "value": "t"}, {"type": "text/html", "value": "h"}],
    }


def post(fake: FakeSendGrid, body: Any, key: str = KEY) -> tuple[int, Any, Any]:
    req = urllib.request.Request(
        fake.url + "/v3/mail/send",
        data=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, resp.headers, None
    except urllib.error.HTTPError as err:
        payload = err.read()
        return err.code, err.headers, json.loads(payload) if payload else None


def test_accepts_and_records_a_valid_request(fake: FakeSendGrid) -> None:
    status, headers, _ = post(fake, good(3))
    assert status == 202 and headers["X-Message-Id"] == fake.message_ids[0]
    assert fake.recipients == 3 and len(fake.personalizations()) == 3


def test_bad_key_gets_401_in_sendgrid_shape(fake: FakeSendGrid) -> None:
    status, _, body = post(fake, good(), key="nope")
    assert status == 401
    assert body["errors"][0]["message"]
    assert not fake.requests


def _mutate(body: dict[str, Any], how: str) -> None:
    p = body["personalizations"]
    if how == "none":
        body["personalizations"] = []
    elif how == "too_many":
        body["personalizations"] = [{"to": [{"email": f"r{i}@x.net"}]} for i in range(1001)]
    elif how == "no_to":
        p[0]["to"] = []
    elif how == "dup_in_one":
        p[0]["to"].append({"email": "R0@example.net"})
    elif how == "dup_across":
        p[1]["bcc"] = [{"email": "r0@example.net"}]
    elif how == "int_arg":
        p[0]["custom_args"] = {"subscriber_id": 1}
    elif how == "int_sub":
        p[0]["substitutions"] = {"%%name%%": 5}
    elif how == "big_args":
        p[0]["custom_args"] = {f"k{i}": "v" * 100 for i in range(100)}
    elif how == "html_first":
        body["content"].reverse()
    elif how == "reserved":
        p[0]["headers"] = {"X-SG-ID": "1"}
    elif how == "reserved_top":
        body["headers"] = {"Content-Transfer-Encoding": "8bit"}
    elif how == "no_subject":
        del body["subject"]
    elif how == "no_from":
        del body["from"]


@pytest.mark.parametrize(
    ("how", "field"),
    [
        ("none", "personalizations"),
        ("too_many", "personalizations"),
        ("no_to", "personalizations.0.to"),
        ("dup_in_one", "personalizations.0.to"),
        ("dup_across", "personalizations.1.bcc"),
        ("int_arg", "personalizations.0.custom_args.subscriber_id"),
        ("int_sub", "personalizations.0.substitutions.%%name%%"),
        ("big_args", "personalizations.0.custom_args"),
        ("html_first", "content"),
        ("reserved", "personalizations.0.headers.X-SG-ID"),
        ("reserved_top", "headers.Content-Transfer-Encoding"),
        ("no_subject", "subject"),
        ("no_from", "from"),
    ],
)
def test_refuses_what_sendgrid_refuses(fake: FakeSendGrid, how: str, field: str) -> None:
    body = good()
    _mutate(body, how)
    status, _, answer = post(fake, body)
    assert status == 400, how
    assert answer["errors"][0]["field"] == field
    assert answer["errors"][0]["message"]
    assert not fake.requests


def test_subject_may_come_from_every_personalization(fake: FakeSendGrid) -> None:
    body = good()
    del body["subject"]
    for p in body["personalizations"]:
        p["subject"] = "Each"
    assert post(fake, body)[0] == 202


def test_scripted_answers_then_back_to_normal(fake: FakeSendGrid) -> None:
    fake.fail_next(429, times=1, retry_after=3)
    fake.fail_next(500)
    status, headers, body = post(fake, good())
    assert (status, headers["Retry-After"]) == (429, "3")
    assert body["errors"]
    assert post(fake, good())[0] == 500
    assert post(fake, good())[0] == 202
    assert fake.statuses == [429, 500, 202]
