"""Staff accounts and sign-ins, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import pytest
from argon2 import PasswordHasher
from sqlalchemy import select, update

from digestmail import staff
from digestmail.db import Database
from digestmail.models import Staff, StaffSession, utcnow

PASSWORD = "four unrelated words here"


def test_add_stores_an_argon2_hash_and_the_address_key(database: Database) -> None:
    member = staff.add(database, "Anna@Institute.Example", PASSWORD)
    assert member.email == "anna@institute.example"
    with database.session() as session:
        row = session.scalars(select(Staff)).one()
    assert row.password_hash.startswith("$argon2id$")
    assert PASSWORD not in row.password_hash
    assert [m.email for m in staff.list_staff(database)] == ["anna@institute.example"]
    assert staff.count(database) == 1
    with pytest.raises(staff.StaffExists) as exists:
        staff.add(database, "ANNA@institute.example", PASSWORD)
    assert exists.value.email == "anna@institute.example"


@pytest.mark.parametrize(
    ("password", "problem"),
    [
        ("short pass", staff.PasswordProblem.TOO_SHORT),
        ("x" * 1025, staff.PasswordProblem.TOO_LONG),
        ("anna@institute.example", staff.PasswordProblem.IS_EMAIL),
    ],
)
def test_weak_passwords_are_refused_with_the_reason(
    database: Database, password: str, problem: staff.PasswordProblem
) -> None:
    with pytest.raises(staff.WeakPassword) as refused:
        staff.add(database, "anna@institute.example", password)
    assert refused.value.problem is problem
    assert staff.count(database) == 0


def test_a_bad_address_is_refused(database: Database) -> None:
    with pytest.raises(staff.BadStaffAddress) as refused:
        staff.add(database, "not an address", PASSWORD)
    assert refused.value.reason


def test_authenticate(database: Database) -> None:
    staff.add(database, "anna@institute.example", PASSWORD)
    assert staff.authenticate(database, "ANNA@institute.example", PASSWORD) is not None
    assert staff.authenticate(database, "anna@institute.example", PASSWORD + "x") is None
    assert staff.authenticate(database, "nobody@institute.example", PASSWORD) is None
    assert staff.authenticate(database, "not an address", PASSWORD) is None
    assert staff.authenticate(database, "anna@institute.example", "") is None


def test_an_old_hash_is_upgraded_on_sign_in(database: Database) -> None:
    staff.add(database, "anna@institute.example", PASSWORD)
    weak = PasswordHasher(time_cost=1, memory_cost=8192).hash(PASSWORD)
    with database.session() as session:
        session.execute(update(Staff).values(password_hash=weak))
    assert staff.authenticate(database, "anna@institute.example", PASSWORD) is not None
    with database.session() as session:
        stored = session.scalars(select(Staff.password_hash)).one()
    assert stored != weak and not PasswordHasher().check_needs_rehash(stored)


def test_sessions_last_until_they_end_or_expire(database: Database) -> None:
    member = staff.add(database, "anna@institute.example", PASSWORD)
    token = staff.start_session(database, member, 3600)
    assert staff.session_member(database, token) == member
    assert staff.session_member(database, token + "x") is None
    with database.session() as session:
        stored = session.scalars(select(StaffSession.token_hash)).one()
    assert token not in stored  # only its hash is kept
    staff.end_session(database, token)
    assert staff.session_member(database, token) is None

    token = staff.start_session(database, member, 3600)
    with database.session() as session:
        session.execute(update(StaffSession).values(expires_at=utcnow() - timedelta(seconds=1)))
    assert staff.session_member(database, token) is None
    staff.start_session(database, member, 3600)  # clears the expired one on the way
    with database.session() as session:
        assert len(session.scalars(select(StaffSession)).all()) == 1


def test_a_new_password_or_a_removal_ends_every_sign_in(database: Database) -> None:
    anna = staff.add(database, "anna@institute.example", PASSWORD)
    ben = staff.add(database, "ben@institute.example", PASSWORD)
    first, second = (staff.start_session(database, anna, 3600) for _ in range(2))
    bens = staff.start_session(database, ben, 3600)
    staff.set_password(database, "anna@institute.example", "another four words here")
    assert staff.session_member(database, first) is None
    assert staff.session_member(database, second) is None
    assert staff.session_member(database, bens) == ben
    assert staff.authenticate(database, "anna@institute.example", PASSWORD) is None
    assert staff.authenticate(database, "anna@institute.example", "another four words here")

    staff.remove(database, "BEN@institute.example")
    assert staff.session_member(database, bens) is None
    assert [m.email for m in staff.list_staff(database)] == ["anna@institute.example"]
    with pytest.raises(staff.StaffNotFound):
        staff.remove(database, "ben@institute.example")
    with pytest.raises(staff.StaffNotFound):
        staff.set_password(database, "ben@institute.example", PASSWORD)
