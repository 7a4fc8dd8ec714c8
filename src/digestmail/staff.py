"""Staff accounts and their signed-in sessions (the admin's login).

An account is an email address and an argon2 hash of a password (argon2-cffi's
defaults: argon2id, memory-hard, a salt of its own per hash). A sign-in is a
``StaffSession`` row holding the SHA-256 of a random token; the browser holds the
token itself (the web layer signs and sets the cookie). Everything that must end a
sign-in deletes rows: logging out, removing the account, changing its password, and
the session's own expiry.

Nothing here prints or names a command: refusals are ``StaffError`` subclasses that
carry the address and the reason, and the CLI and the admin say them in their words.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import delete, func, select

from digestmail.db import Database
from digestmail.models import Staff, StaffSession, utcnow
from digestmail.subscribers import InvalidAddress, normalize

# NIST SP 800-63B: at least 8 characters chosen by a person; we ask 12, since the
# admin can send to the whole list. Very long inputs are refused before hashing.
PASSWORD_MIN = 12
PASSWORD_MAX = 1024

_hasher = PasswordHasher()
# Verified against when the address has no account, so that a wrong address costs as
# long as a wrong password and the timing does not tell which accounts exist.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


class PasswordProblem(StrEnum):
    TOO_SHORT = "too_short"
    TOO_LONG = "too_long"
    IS_EMAIL = "is_email"  # the password is the account's own address


class StaffError(Exception):
    """A staff operation that cannot be done; subclasses carry the facts."""


class StaffExists(StaffError):
    def __init__(self, email: str) -> None:
        super().__init__(f"there is already a staff account for {email}")
        self.email = email


class StaffNotFound(StaffError):
    def __init__(self, email: str) -> None:
        super().__init__(f"there is no staff account for {email}")
        self.email = email


class BadStaffAddress(StaffError):
    def __init__(self, email: str, reason: str) -> None:
        super().__init__(f"{email!r} is not a usable address: {reason}")
        self.email = email
        self.reason = reason


class WeakPassword(StaffError):
    def __init__(self, problem: PasswordProblem) -> None:
        super().__init__(f"password refused: {problem.value}")
        self.problem = problem


@dataclass(frozen=True)
class StaffMember:
    id: int
    email: str
    created_at: datetime


def _member(row: Staff) -> StaffMember:
    return StaffMember(row.id, row.email, row.created_at)


def account_key(email: str) -> str:
    """The stored form of a staff address: the subscribers' lookup key (one rule)."""
    try:
        return normalize(email).key
    except InvalidAddress as exc:
        raise BadStaffAddress(email, exc.reason) from None


def password_problem(email: str, password: str) -> PasswordProblem | None:
    """Why a new password is refused, or None if it is acceptable."""
    if len(password) < PASSWORD_MIN:
        return PasswordProblem.TOO_SHORT
    if len(password) > PASSWORD_MAX:
        return PasswordProblem.TOO_LONG
    if password.strip().lower() == email.strip().lower():
        return PasswordProblem.IS_EMAIL
    return None


def _hash(email: str, password: str) -> str:
    problem = password_problem(email, password)
    if problem is not None:
        raise WeakPassword(problem)
    return _hasher.hash(password)


def generate_password() -> str:
    """A random password for a first account: 20 characters, about 120 bits."""
    return secrets.token_urlsafe(15)


def add(db: Database, email: str, password: str) -> StaffMember:
    """Create an account; ``StaffExists`` if the address has one already."""
    key = account_key(email)
    hashed = _hash(key, password)
    with db.session() as session:
        if session.scalar(select(Staff.id).where(Staff.email == key)) is not None:
            raise StaffExists(key)
        row = Staff(email=key, password_hash=hashed, created_at=utcnow())
        session.add(row)
        session.flush()
        return _member(row)


def list_staff(db: Database) -> list[StaffMember]:
    with db.session() as session:
        return [_member(r) for r in session.scalars(select(Staff).order_by(Staff.email))]


def count(db: Database) -> int:
    with db.session() as session:
        return int(session.scalar(select(func.count()).select_from(Staff)) or 0)


def find(db: Database, email: str) -> StaffMember:
    """The account of this address; ``StaffNotFound`` if there is none."""
    key = account_key(email)
    with db.session() as session:
        row = session.scalars(select(Staff).where(Staff.email == key)).one_or_none()
        if row is None:
            raise StaffNotFound(key)
        return _member(row)


def remove(db: Database, email: str) -> None:
    """Delete the account and end every sign-in it has."""
    member = find(db, email)
    with db.session() as session:
        session.execute(delete(StaffSession).where(StaffSession.staff_id == member.id))
        session.execute(delete(Staff).where(Staff.id == member.id))


def set_password(db: Database, email: str, password: str) -> None:
    """Give the account a new password and end every sign-in made with the old one."""
    member = find(db, email)
    hashed = _hash(member.email, password)
    with db.session() as session:
        row = session.get_one(Staff, member.id)
        row.password_hash = hashed
        session.execute(delete(StaffSession).where(StaffSession.staff_id == member.id))


def authenticate(db: Database, email: str, password: str) -> StaffMember | None:
    """The account if the password is its own, else None (unknown address, wrong password).

    Takes as long for an unknown address as for a wrong password. A hash made with
    weaker parameters than today's is replaced on success.
    """
    try:
        key = account_key(email)
    except BadStaffAddress:
        key = ""
    if not password or len(password) > PASSWORD_MAX:
        return None
    with db.session() as session:
        found = session.scalars(select(Staff).where(Staff.email == key)) if key else None
        row = found.one_or_none() if found is not None else None
        try:
            _hasher.verify(row.password_hash if row else _DUMMY_HASH, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return None
        if row is None:
            return None
        if _hasher.check_needs_rehash(row.password_hash):
            row.password_hash = _hasher.hash(password)
        return _member(row)


# --- sessions ----------------------------------------------------------------------------


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def start_session(db: Database, member: StaffMember, max_age: int) -> str:
    """A new sign-in for ``member`` lasting ``max_age`` seconds; returns its token.

    Expired sessions of every account are cleared on the way, so the table holds only
    live ones.
    """
    token = secrets.token_urlsafe(32)
    now = utcnow()
    with db.session() as session:
        session.execute(delete(StaffSession).where(StaffSession.expires_at <= now))
        session.add(
            StaffSession(
                token_hash=_token_hash(token),
                staff_id=member.id,
                created_at=now,
                expires_at=now + timedelta(seconds=max_age),
            )
        )
    return token


def session_member(db: Database, token: str) -> StaffMember | None:
    """Who a session token belongs to, while it lasts; None once it has ended."""
    with db.session() as session:
        row = session.execute(
            select(Staff, StaffSession.expires_at)
            .join(StaffSession, StaffSession.staff_id == Staff.id)
            .where(StaffSession.token_hash == _token_hash(token))
        ).one_or_none()
    if row is None or row.expires_at <= utcnow():
        return None
    return _member(row.Staff)


def end_session(db: Database, token: str) -> None:
    with db.session() as session:
        session.execute(delete(StaffSession).where(StaffSession.token_hash == _token_hash(token)))
