"""``pacs audit``: check the hash chain, print its head for anchoring, export the log."""

from __future__ import annotations

import argparse
import getpass
import sys
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from storage.settings import StorageSettings


def _settings(args: argparse.Namespace) -> StorageSettings:
    return StorageSettings(**({"data_dir": args.data_dir} if args.data_dir is not None else {}))


def moment(text: str, *, end: bool = False) -> datetime:
    """``YYYY-MM-DD`` (a whole day: its start, or with *end* the next day's start) or an ISO 8601 date-time (UTC)."""
    try:
        day = date.fromisoformat(text)
    except ValueError:
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD) or ISO 8601 date-time: {text!r}") from None
        return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    start = datetime.combine(day, time(0), tzinfo=UTC)
    return start + timedelta(days=1) if end else start


def cmd_verify(args: argparse.Namespace) -> int:
    """Check the audit hash chain, and every anchor given, naming the first broken entry."""
    from storage.audit import anchor
    from storage.factory import open_archive

    try:
        anchors = [anchor.parse_anchor(text) for text in args.anchor or []]
        if args.anchors_file:
            lines = Path(args.anchors_file).read_text().splitlines()
            anchors += [anchor.parse_anchor(line) for line in lines if line.strip() and not line.startswith("#")]
    except (OSError, ValueError) as exc:
        print(f"pacs audit verify: {exc}", file=sys.stderr)
        return 2
    archive = open_archive(_settings(args))
    report = archive.verify_audit()
    problems = list(report.problems)
    with archive.db.read_session() as session:
        problems += [p for p in (anchor.check(session, a) for a in anchors) if p is not None]
    for problem in problems:
        print(f"BROKEN: {problem}")
    checked = f", {len(anchors)} anchor{'s' if len(anchors) != 1 else ''} checked" if anchors else ""
    print(f"{report.entries} audit entries{checked}, chain {'intact' if not problems else 'BROKEN'}")
    return 0 if not problems else 1


def cmd_head(args: argparse.Namespace) -> int:
    """Print the chain head (``ID:SHA256``, alone on the last line) to keep outside the database."""
    from storage.audit import anchor
    from storage.factory import open_archive

    archive = open_archive(_settings(args))
    with archive.db.read_session() as session:
        current = anchor.head(session)
    print(f"audit head: entry {current.anchor.entry_id} of {current.entries}, at {current.occurred_at or '-'}")
    print(current.anchor)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    """Write the audit log (or a time range of it) to standard output; the export itself is audited."""
    from storage.audit import Actor, AuditRecord, export
    from storage.factory import open_archive

    archive = open_archive(_settings(args))
    since = args.since
    until = args.until
    with archive.db.read_session() as session:
        count = export.write(
            export.entries(session, since=since, until=until), sys.stdout, args.format, source_id=args.source_id
        )
    sys.stdout.flush()
    archive.record(
        AuditRecord(
            actor=Actor(f"pacs audit export ({getpass.getuser()})", kind="system"),
            action="audit-export",
            outcome="success",
            detail={
                "format": args.format,
                "from": since.isoformat() if since else None,
                "to": until.isoformat() if until else None,
                "entries": count,
            },
        )
    )
    print(f"{count} audit entries exported", file=sys.stderr)
    return 0


def add_parsers(sub: Any, data_dir: Any) -> None:
    """Add ``pacs audit verify | head | export`` to the subcommands *sub*."""
    from storage.audit.export import FORMATS

    audit = sub.add_parser("audit", help="audit log: verify the chain, print its head, export it")
    commands = audit.add_subparsers(dest="audit_command", required=True)

    verify = commands.add_parser("verify", help="check the audit hash chain (exit 1 naming the first broken entry)")
    data_dir(verify)
    verify.add_argument(
        "--anchor", action="append", metavar="ID:SHA256", help="an anchor printed by `pacs audit head` (repeatable)"
    )
    verify.add_argument("--anchors-file", metavar="FILE", help="a file of anchors, one ID:SHA256 per line")
    verify.set_defaults(func=cmd_verify)

    head = commands.add_parser("head", help="print the chain head (ID:SHA256) to keep outside the database")
    data_dir(head)
    head.set_defaults(func=cmd_head)

    export = commands.add_parser("export", help="write the audit log to standard output")
    data_dir(export)
    export.add_argument(
        "--format", choices=FORMATS, default="jsonl", help="jsonl (default), csv, or dicom (PS3.15 A.5)"
    )
    export.add_argument(
        "--from", dest="since", type=moment, metavar="DATE", help="first day (YYYY-MM-DD) or moment (ISO 8601, UTC)"
    )
    export.add_argument(
        "--to",
        dest="until",
        type=lambda text: moment(text, end=True),
        metavar="DATE",
        help="last day, inclusive (YYYY-MM-DD), or moment (exclusive)",
    )
    export.add_argument("--source-id", default="NDTPACS", help="AuditSourceID of DICOM audit messages (our AE title)")
    export.set_defaults(func=cmd_export)
