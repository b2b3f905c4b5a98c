"""Engine and transactions: one engine per process, one session per unit of work.

SQLite (embedded default) runs in WAL mode with ``synchronous=FULL`` (an
acknowledged instance survives a crash) and write transactions start with
``BEGIN IMMEDIATE`` so concurrent writers queue instead of failing on lock
upgrade. PostgreSQL runs READ COMMITTED with a connection pool; write units of
work are retried on serialization failures, deadlocks and unique-key races.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from storage.errors import IndexUnavailable
from storage.index.prepared import driver_error

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
        # Database.write_core begins on the driver connection before SQLAlchemy knows.
        if not conn.connection.driver_connection.in_transaction:  # type: ignore[union-attr]
            _begin_on_driver(conn, begin)

    return engine


def _begin_on_driver(conn: Connection, begin: str) -> None:
    """Start a transaction with the statement *begin* (e.g. ``BEGIN IMMEDIATE``) on *conn*'s DBAPI connection."""
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.execute(begin)
    except conn.dialect.loaded_dbapi.Error as exc:
        raise driver_error(conn.dialect, begin, (), exc) from exc
    finally:
        cursor.close()


def _end(conn: Connection, *, commit: bool) -> None:
    """Commit or roll back the transaction on *conn*, begun by SQLAlchemy or on the driver connection."""
    if conn.in_transaction():  # the work ran statements through SQLAlchemy, which began its own transaction
        if commit:
            conn.commit()
        else:
            conn.rollback()
        return
    driver = conn.connection.dbapi_connection
    assert driver is not None
    try:
        if commit:
            driver.commit()
        else:
            driver.rollback()
    except conn.dialect.loaded_dbapi.Error as exc:
        raise driver_error(conn.dialect, "COMMIT" if commit else "ROLLBACK", (), exc) from exc


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
        self._read = sessionmaker(self.engine, expire_on_commit=False)
        self._write = sessionmaker(self._write_engine, expire_on_commit=False)
        # Called before every read session and ORM write: deferred indexing sets it to
        # Intake.settle, so a read sees every store acknowledged before it began.
        self.before_read: Callable[[], object] | None = None
        self._inside = threading.local()  # depth of read sessions / writes on this thread

    @contextmanager
    def _settled(self, settle: bool = True) -> Iterator[None]:
        """Run before_read on the outermost read or write of this thread only.

        A read nested in a write (or another read) must not wait for the indexer: the
        outer one already did, and its open transaction may hold the lock the indexer needs.
        *settle* False: this unit of work does not read what ingest writes (accounts), never wait.
        """
        depth = getattr(self._inside, "depth", 0)
        if depth == 0 and settle and self.before_read is not None:
            self.before_read()
        self._inside.depth = depth + 1
        try:
            yield
        finally:
            self._inside.depth = depth

    @contextmanager
    def read_session(self, *, settle: bool = True) -> Iterator[Session]:
        """A session for reads; rolled back and closed at the end (*settle*: see :meth:`_settled`)."""
        try:
            with self._settled(settle), self._read() as session:
                yield session
                session.rollback()
        except (OperationalError, DBAPIError) as exc:
            raise IndexUnavailable(f"index database unavailable: {exc.orig or exc}") from exc

    def write(self, work: Callable[[Session], T], *, attempts: int = 6, settle: bool = True) -> T:
        """Run *work* in one write transaction (an ORM session) and commit; retry transient conflicts.

        *work* must be safe to re-run (it is called again after a rollback).
        """

        def in_session() -> T:
            with self._write() as session, session.begin():
                return work(session)

        with self._settled(settle):
            return self._retrying(in_session, attempts)

    def write_core(self, work: Callable[[Connection], T], *, attempts: int = 6) -> T:
        """:meth:`write` on a plain Core connection: no ORM session (the ingest hot path).

        The transaction is begun and ended on the DBAPI connection: SQLAlchemy's transaction
        bookkeeping costs as much as a short statement. *work* may run statements through
        SQLAlchemy too (the transaction is then ended through it).
        """

        def in_connection() -> T:
            with self._write_engine.connect() as conn:
                if self._write_begin is not None:
                    _begin_on_driver(conn, self._write_begin)
                try:
                    result = work(conn)
                except BaseException:
                    try:
                        _end(conn, commit=False)
                    except Exception:  # the work's error is the one to report
                        log.debug("rollback after a failed write transaction failed", exc_info=True)
                    raise
                _end(conn, commit=True)
                return result

        return self._retrying(in_connection, attempts)

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
