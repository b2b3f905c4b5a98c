"""The unit of work: one transaction, opened by a door or a process, in which core services only flush.

A :class:`UnitOfWork` holds one database connection (``.connection``, for the prepared
statements of the ingest path) and, when asked, an ORM session on that same connection
(``.session``). Whoever opened it commits at the end of its block (``Database.unit_of_work``)
or lets ``Database.run`` re-run the whole block after a transient conflict. A record and its
audit entry written by core services in one unit of work therefore commit together or not at all.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from sqlalchemy import Connection, Engine
from sqlalchemy.orm import Session

from storage.index.prepared import driver_error

log = logging.getLogger(__name__)


def begin_on_driver(conn: Connection, begin: str) -> None:
    """Start a transaction with the statement *begin* (e.g. ``BEGIN IMMEDIATE``) on *conn*'s DBAPI connection."""
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.execute(begin)
    except conn.dialect.loaded_dbapi.Error as exc:
        raise driver_error(conn.dialect, begin, (), exc) from exc
    finally:
        cursor.close()


def end_transaction(conn: Connection, *, commit: bool) -> None:
    """Commit or roll back the transaction on *conn*, begun by SQLAlchemy or on the driver connection."""
    if conn.in_transaction():  # statements ran through SQLAlchemy, which began its own transaction
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


class UnitOfWork:
    """One transaction: a connection, an ORM session on it when asked, and what to do after the commit.

    Opened lazily: a unit of work that never touches the database costs nothing. The
    transaction is begun on the driver connection (``BEGIN IMMEDIATE`` for SQLite writers),
    so the ingest path's prepared statements run without SQLAlchemy's bookkeeping.
    """

    def __init__(self, engine: Engine, *, write: bool, begin: str | None) -> None:
        self.write = write
        self._engine = engine
        self._begin = begin
        self._conn: Connection | None = None
        self._session: Session | None = None
        self._after_commit: list[Callable[[], object]] = []

    @property
    def connection(self) -> Connection:
        """The transaction's connection (Core statements and prepared statements)."""
        if self._conn is None:
            conn = self._engine.connect()
            if self._begin is not None:
                try:
                    begin_on_driver(conn, self._begin)
                except BaseException:
                    conn.close()
                    raise
            self._conn = conn
        return self._conn

    @property
    def session(self) -> Session:
        """An ORM session on the same connection and transaction; core services only flush it."""
        if self._session is None:
            self._session = Session(bind=self.connection, expire_on_commit=False, autoflush=True)
        return self._session

    def after_commit(self, action: Callable[[], object]) -> None:
        """Run *action* once this unit of work has committed (never when it rolls back)."""
        self._after_commit.append(action)

    def commit(self) -> None:
        """Flush and commit; then the after-commit actions."""
        if self._session is not None:
            self._session.commit()
        elif self._conn is not None:
            end_transaction(self._conn, commit=True)
        actions, self._after_commit = self._after_commit, []
        for action in actions:
            action()

    def rollback(self) -> None:
        """Discard everything written in this unit of work."""
        self._after_commit.clear()
        try:
            if self._session is not None:
                self._session.rollback()
            if self._conn is not None:
                end_transaction(self._conn, commit=False)
        except Exception:  # the caller's error is the one to report
            log.debug("rollback of a unit of work failed", exc_info=True)

    def close(self) -> None:
        """Give the connection back to the pool."""
        if self._session is not None:
            self._session.close()
            self._session = None
        if self._conn is not None:
            self._conn.close()
            self._conn = None
