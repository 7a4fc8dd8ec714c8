"""Which ledger rows a batch in flight holds, in one place.

A batch is claimed by writing one ``DeliveryBatch`` row, not by marking each of its
rows (that update was most of what claiming a recipient cost). Its rows stay
``pending`` and are known by rule:

- a first try (``retry`` false) holds the pending rows of its id range not yet tried
  (``temp_failures = 0``): the claim took every such row of the range, in id order, and
  first tries never overlap, so no other row can match;
- a retry holds the pending rows of its range marked with its number (``batch``), which
  the claim wrote on each of them (retries are few, and their rows are scattered).

A row leaves its batch when the answer moves it out of ``pending``, or counts a failure
(a first try), or gets another number (a retry). Only an open batch (``closed_at``
null) holds rows: those are the rows in flight, which a dead sender's successor sends
again.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

from sqlalchemy import ColumnElement, Select, Table, and_, false, func, or_, select, true

from digestmail.campaigns.tables import D
from digestmail.models import DeliveryBatch, DeliveryState

B = cast(Table, DeliveryBatch.__table__)


def holds(
    *,
    retry: bool | ColumnElement[bool],
    number: int | ColumnElement[int],
    first: object,
    last: object,
) -> ColumnElement[bool]:
    """The rows of ``D`` a batch holds, given its columns (a join) or its values."""
    if isinstance(retry, bool):
        kind = D.c.batch == number if retry else D.c.temp_failures == 0
    else:
        kind = or_(
            and_(retry == true(), D.c.batch == number),
            and_(retry == false(), D.c.temp_failures == 0),
        )
    return and_(D.c.state == DeliveryState.PENDING, D.c.id.between(first, last), kind)


def _open_join(campaign_ids: Sequence[int]) -> Select[Any]:
    on = and_(
        D.c.campaign_id == B.c.campaign_id,
        holds(retry=B.c.retry, number=B.c.number, first=B.c.first_id, last=B.c.last_id),
    )
    return (
        select(B.c.campaign_id)
        .select_from(B.join(D, on))
        .where(B.c.campaign_id.in_(campaign_ids), B.c.closed_at.is_(None))
    )


def in_flight_counts(
    campaign_ids: Sequence[int], *, failed_before: bool = False
) -> Select[int, int]:
    """Rows held by open batches, per campaign; or only those that failed temporarily
    before (a retry's rows, no longer waiting for their try)."""
    query = _open_join(campaign_ids)
    if failed_before:
        query = query.where(D.c.temp_failures > 0)
    query = query.add_columns(func.count()).group_by(B.c.campaign_id)
    return cast(Select[int, int], query)


def in_flight_rows(campaign_ids: Sequence[int]) -> Select[int, int, int, str]:
    """(campaign id, batch number, delivery id, email) of every row in flight."""
    query = _open_join(campaign_ids).add_columns(B.c.number, D.c.id, D.c.email)
    return cast(Select[int, int, int, str], query)
