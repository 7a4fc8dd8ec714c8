"""Fifty people subscribing at the same moment: no server error, nobody lost."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from sqlalchemy import func, select

from digestmail.config import Settings
from digestmail.db import Database
from digestmail.models import Subscriber, SubscriberStatus
from tests.liveserver import serve


def test_fifty_concurrent_subscriptions(settings: Settings) -> None:
    roomy = settings.model_copy(update={"subscribe_limit": "1000/minute"})
    # Ten of the fifty are the same person in different case, racing for one row.
    emails = [f"person{i}@example.com" for i in range(40)] + [
        "Twin@Example.com" if i % 2 else "twin@example.com" for i in range(10)
    ]
    with serve(roomy) as url:

        def subscribe(email: str) -> int:
            with httpx.Client(base_url=url, timeout=60) as c:
                return c.post("/subscribe", data={"email": email}).status_code

        with ThreadPoolExecutor(max_workers=50) as pool:
            codes = list(pool.map(subscribe, emails))
    assert codes == [200] * 50
    db = Database(roomy.database_url)
    with db.session() as s:
        keys = set(s.scalars(select(Subscriber.email_key)))
        pending = s.scalar(
            select(func.count()).where(Subscriber.status == SubscriberStatus.PENDING)
        )
    db.dispose()
    assert keys == {f"person{i}@example.com" for i in range(40)} | {"twin@example.com"}
    assert pending == 41
    sent = list(Path(roomy.outbox_dir).glob("*.eml"))
    assert len([p for p in sent if p.name.lower().startswith("person")]) == 40
