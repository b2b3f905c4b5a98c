"""Core statements compiled once and run on the DBAPI cursor: the ingest hot path's SQL.

SQLAlchemy's execution machinery (execution context, result objects, parameter
processing) costs about 150 µs per statement on this machine, as much as the
database itself for the few short statements one store needs. A
:class:`PreparedStatement` compiles its statement once per dialect and set of
parameter names, keeps the dialect's bind processors (SQLite stores datetimes in
SQLAlchemy's own text format: rows must look exactly as if written through
SQLAlchemy) and executes on the connection's DBAPI cursor, inside the caller's
transaction. Rows come back as the driver returns them (no result processing):
select only columns the driver returns as Python values (numbers, text), not
SQLite datetimes.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.engine.interfaces import DBAPICursor, Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql.base import Executable
from sqlalchemy.sql.compiler import SQLCompiler


def driver_error(dialect: Dialect, statement: str, parameters: Any, exc: Exception) -> Exception:
    """What SQLAlchemy raises for the driver error *exc* (IntegrityError, OperationalError, ...).

    Callers' retry and error mapping (``Database.run``) then treat statements run on the
    DBAPI connection like statements run through SQLAlchemy.
    """
    return DBAPIError.instance(statement, parameters, exc, dialect.loaded_dbapi.Error, dialect=dialect)


@dataclass(frozen=True)
class _Compiled:
    sql: str
    names: tuple[str, ...]  # bind names in parameter order (positional paramstyles)
    positional: bool
    processors: Mapping[str, Callable[[Any], Any]]
    literals: Mapping[str, Any]  # values compiled into the statement (e.g. the 1 of ``id == 1``)

    @classmethod
    def of(cls, statement: Executable, dialect: Dialect, keys: Sequence[str]) -> _Compiled:
        compiled = statement.compile(dialect=dialect, column_keys=list(keys))  # type: ignore[attr-defined]
        assert isinstance(compiled, SQLCompiler)
        defaulted = [column.key for column in (*compiled.insert_prefetch, *compiled.update_prefetch)]
        if defaulted:
            # SQLAlchemy computes Python-side column defaults per execution; we do not.
            raise ValueError(f"give a value for every column with a default: {', '.join(defaulted)}")
        processors: dict[str, Callable[[Any], Any]] = {}
        literals: dict[str, Any] = {}
        for name, bind in compiled.binds.items():
            processor = bind.type.dialect_impl(dialect).bind_processor(dialect)
            if processor is not None:
                processors[name] = processor
            if bind.value is not None or bind.callable is not None:
                literals[name] = bind.effective_value
        return cls(
            sql=compiled.string,
            names=tuple(compiled.positiontup or ()),
            positional=bool(dialect.positional),
            processors=processors,
            literals=literals,
        )

    def parameters(self, values: Mapping[str, Any]) -> Sequence[Any] | dict[str, Any]:
        if self.literals:
            values = {**self.literals, **values}
        processors = self.processors
        if self.positional:
            return [processors[name](values[name]) if name in processors else values[name] for name in self.names]
        return {name: processors[name](v) if name in processors else v for name, v in values.items()}


class PreparedStatement:
    """One statement, executed with plain parameter dicts on the DBAPI cursor of a Core connection."""

    def __init__(self, statement: Executable) -> None:
        self.statement = statement
        self._compiled: dict[tuple[str, tuple[str, ...]], _Compiled] = {}
        self._lock = threading.Lock()

    def _for(self, dialect: Dialect, keys: tuple[str, ...]) -> _Compiled:
        key = (dialect.name, keys)
        compiled = self._compiled.get(key)
        if compiled is None:
            with self._lock:
                compiled = self._compiled.get(key) or self._compiled.setdefault(
                    key, _Compiled.of(self.statement, dialect, keys)
                )
        return compiled

    def run(self, conn: Connection, values: Mapping[str, Any]) -> DBAPICursor:
        """Execute with *values* (by bind or column name) in *conn*'s transaction; the cursor, with its rows."""
        dialect = conn.dialect
        compiled = self._for(dialect, tuple(values))
        cursor = _cursor(conn)
        parameters = compiled.parameters(values)
        try:
            cursor.execute(compiled.sql, parameters)
        except dialect.loaded_dbapi.Error as exc:
            raise driver_error(dialect, compiled.sql, parameters, exc) from exc
        return cursor

    def run_many(self, conn: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
        """Execute once per item of *rows* (all with the same keys) in one driver call (``executemany``).

        psycopg sends them in one pipeline (one round trip); no rows come back.
        """
        if not rows:
            return
        dialect = conn.dialect
        compiled = self._for(dialect, tuple(rows[0]))
        parameters: Any = [compiled.parameters(row) for row in rows]  # all lists, or all dicts
        cursor = _cursor(conn)
        try:
            if len(parameters) == 1:  # psycopg's executemany costs twice an execute for one row
                cursor.execute(compiled.sql, parameters[0])
            else:
                cursor.executemany(compiled.sql, parameters)
        except dialect.loaded_dbapi.Error as exc:
            raise driver_error(dialect, compiled.sql, parameters, exc) from exc

    def rows(self, conn: Connection, values: Mapping[str, Any]) -> list[tuple[Any, ...]]:
        """Execute and fetch every row (a SELECT, or a statement with RETURNING)."""
        return [tuple(row) for row in self.run(conn, values).fetchall()]

    def count(self, conn: Connection, values: Mapping[str, Any]) -> int:
        """Execute and return the number of rows it changed."""
        return int(self.run(conn, values).rowcount)


def _cursor(conn: Connection) -> DBAPICursor:
    """The DBAPI cursor prepared statements use on *conn*'s DBAPI connection, made once per connection.

    A psycopg cursor costs as much to make as a short statement costs to run. The pool
    clears ``info`` when it replaces the DBAPI connection.
    """
    info = conn.connection.info
    cursor: DBAPICursor | None = info.get(_CURSOR)
    if cursor is None:
        dbapi_connection = conn.connection.dbapi_connection
        assert dbapi_connection is not None
        cursor = info[_CURSOR] = dbapi_connection.cursor()
    return cursor


_CURSOR = "storage.index.prepared.cursor"
