"""The Core tables the campaign code works on.

The hot path and the counts are bulk Core statements (an ORM object per recipient
would cost more than the recipient's whole share of a send), so every module of the
package names the tables the same short way.
"""

from __future__ import annotations

from typing import cast

from sqlalchemy import Table

from digestmail.models import Campaign, Delivery, Issue, Subscriber

C = cast(Table, Campaign.__table__)
D = cast(Table, Delivery.__table__)
S = cast(Table, Subscriber.__table__)
I = cast(Table, Issue.__table__)  # noqa: E741
