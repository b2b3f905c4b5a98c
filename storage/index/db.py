"""Engines and units of work: one engine per process, one transaction per unit of work.

Every caller (an HTTP request, a DIMSE operation, a CLI command, an indexer batch) opens
one :class:`~storage.index.unit_of_work.UnitOfWork`; core services write into it and flush,
the caller commits.

SQLite (embedded default) runs in WAL mode with ``synchronous=FULL`` (an
acknowledged instance survives a crash) and write transactions start with
``BEGIN IMMEDIATE`` so concurrent writers queue instead of failing on lock
upgrade. PostgreSQL runs READ COMMITTED with a connection pool; write units of
work are retried on serialization failures, deadlocks and unique-key races.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.orm import Session

from storage.errors import IndexUnavailable
from storage.index.unit_of_work import UnitOfWork, begin_on_driver

log = logging.getLogger(__name__)
T = TypeVar("T")

_RETRYABLE_PG_CODES = {"40001", "40P01"}  # serialization_failure, deadlock_detected


def _is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


def _sqlite_engine(url: str, *, begin: str) -> Engine:
    engine = create_engine(
        url,
        connect_args={"check_same_thread": False, "timeout": 30, "isolation_level": None},
        pool_size=8,
        max_overflow=16,
    )

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_conn: Any, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=FULL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        # PS3.4 C.2.2.2: matching is case-sensitive except for PN, which we
        # lower() explicitly. SQLite's LIKE is case-insensitive by default.
        cur.execute("PRAGMA case_sensitive_like=ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        # A unit of work begins on the driver connection before SQLAlchemy knows.
        if not conn.connection.driver_connection.in_transaction:  # type: ignore[union-attr]
            begin_on_driver(conn, begin)

    return engine


class Database:
    """The index database: engines, sessions and the transaction helpers."""

    def __init__(self, url: str, *, echo: bool = False) -> None:
        self.url = url
        self.is_sqlite = _is_sqlite(url)
        if self.is_sqlite:
            self.engine = _sqlite_engine(url, begin="BEGIN")
            self._write_engine = _sqlite_engine(url, begin="BEGIN IMMEDIATE")
            self._write_begin: str | None = "BEGIN IMMEDIATE"
        else:
            self.engine = create_engine(
                url,
                echo=echo,
                pool_size=10,
                max_overflow=20,
                pool_pre_ping=True,
                isolation_level="READ COMMITTED",
            )
            self._write_engine = self.engine
            self._write_begin = None  # psycopg begins a transaction with the first statement

    @contextmanager
    def unit_of_work(self, *, write: bool = False) -> Iterator[UnitOfWork]:
        """One transaction for the caller's block: committed at its end, rolled back on an error.

        *write*: the unit of work writes (on SQLite it then takes the write lock when it
        begins, so writers queue instead of failing on lock upgrade). A database error is
        :class:`IndexUnavailable`; use :meth:`run` to re-run a block after a transient conflict.
        """
        try:
            with self._raw_unit(write) as uow:
                yield uow
        except (OperationalError, DBAPIError) as exc:
            raise IndexUnavailable(f"index database unavailable: {exc.orig or exc}") from exc

    @contextmanager
    def _raw_unit(self, write: bool) -> Iterator[UnitOfWork]:
        if write:
            uow = UnitOfWork(self._write_engine, write=True, begin=self._write_begin)
        else:
            uow = UnitOfWork(self.engine, write=False, begin="BEGIN" if self.is_sqlite else None)
        try:
            yield uow
            uow.commit()
        except BaseException:
            uow.rollback()
            raise
        finally:
            uow.close()

    def run(self, work: Callable[[UnitOfWork], T], *, write: bool = True, attempts: int = 6) -> T:
        """Run *work* in a unit of work and commit; re-run it in a fresh one after a transient conflict.

        *work* must be safe to re-run (it is called again after a rollback).
        """

        def once() -> T:
            with self._raw_unit(write) as uow:
                return work(uow)

        return self._retrying(once, attempts)

    @contextmanager
    def read_session(self) -> Iterator[Session]:
        """The session of a read unit of work (a shorthand for reports and tests)."""
        with self.unit_of_work() as uow:
            yield uow.session

    def _retrying(self, transaction: Callable[[], T], attempts: int) -> T:
        for attempt in range(1, attempts + 1):
            try:
                return transaction()
            except IntegrityError:
                # A concurrent writer inserted the same component/study/series
                # first: re-run, the second pass finds the row.
                if attempt == attempts:
                    raise IndexUnavailable("index transaction kept violating a constraint") from None
            except (OperationalError, DBAPIError) as exc:
                code = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)
                locked = self.is_sqlite and "locked" in str(exc.orig)
                if code not in _RETRYABLE_PG_CODES and not locked:
                    raise IndexUnavailable(f"index database unavailable: {exc.orig}") from exc
                if attempt == attempts:
                    raise IndexUnavailable(f"index transaction kept conflicting: {exc}") from exc
            time.sleep(0.005 * attempt)
            log.debug("retrying write transaction (attempt %d)", attempt + 1)
        raise AssertionError("unreachable")

    def ping(self) -> bool:
        """True when the database answers."""
        try:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            return True
        except Exception:  # noqa: BLE001 - health probe reports any failure as down
            return False

    def dispose(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()
        if self._write_engine is not self.engine:
            self._write_engine.dispose()
