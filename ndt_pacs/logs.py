"""Logging of the `pacs` processes: one format for the main process and its receiver workers."""

from __future__ import annotations

import logging


def configure_logging(*, verbose: bool = False, process: str = "") -> None:
    """Log to stderr at INFO (DEBUG when *verbose*); pynetdicom's chatter only when verbose.

    *process* names a worker process in every line (e.g. ``worker``).
    """
    tag = f"[{process}]" if process else ""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format=f"%(asctime)s %(levelname)s %(name)s{tag}: %(message)s",
    )
    if not verbose:
        # libraries' chatter (Alembic's "Context impl SQLiteImpl", pynetdicom's PDUs) only when verbose
        for name in ("pynetdicom", "alembic"):
            logging.getLogger(name).setLevel(logging.WARNING)
