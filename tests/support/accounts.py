"""Accounts for tests: create users and tokens in an archive's index, and credentials for HTTP clients."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from storage.audit import Actor
from storage.errors import NotFound
from storage.index.db import Database
from storage.records import accounts

PASSWORD = "Tr0ub4dor&3-horse"  # long enough, not common, not built on a name
TESTS = Actor("tests", kind="system")


def add_account(
    db: Database,
    name: str,
    role: str,
    *,
    password: str | None = PASSWORD,
    full_name: str = "",
    qualifications: Iterable[dict[str, Any]] = (),
) -> str:
    """Create the account *name* (unless it exists) with *qualifications* (``accounts.qualify`` keywords)."""

    def work(session: Any) -> None:
        try:
            accounts.identity_of(session, name)
            return
        except NotFound:
            pass
        accounts.add_user(session, TESTS, name, role, full_name=full_name or name.title(), password=password)
        for q in qualifications:
            accounts.qualify(session, TESTS, name, **q)

    db.write(work)
    return name


def token_for(db: Database, name: str, role: str = "inspector", **account: Any) -> str:
    """A fresh bearer token of the account *name* (created with *role* when missing)."""
    add_account(db, name, role, **account)
    return db.write(lambda s: accounts.create_token(s, TESTS, name))[1]


def bearer(token: str) -> dict[str, str]:
    """The Authorization header of *token*."""
    return {"Authorization": f"Bearer {token}"}


def with_credentials(url: str, name: str, password: str = PASSWORD) -> str:
    """*url* carrying HTTP Basic credentials (httpx and requests send them)."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=f"{name}:{password}@{parts.hostname}:{parts.port}"))
