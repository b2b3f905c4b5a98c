"""``pacs import``, ``pacs push`` and ``pacs export``: bulk load and hand-over, with a progress bar.

Import goes through the one ingest path (:meth:`storage.archive.Archive.store_file`), push through
C-STORE (PS3.4 Annex B, :mod:`pacs.push`), export writes the stored originals and optionally a
DICOM File-set (PS3.10 §8) with a DICOMDIR. :func:`add_commands` adds the three subcommands.
"""

from __future__ import annotations

import argparse
import contextlib
import getpass
import logging
import os
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ndt_pacs.progress import progress_bar

MEDIA_STORAGE_DIRECTORY = "1.2.840.10008.1.3.10"  # the DICOMDIR's SOP Class (PS3.4 Annex F)


def cli_actor() -> Any:
    """Who runs the command: the operating-system user, written ``cli:<os user>`` in the audit log."""
    from storage.audit import Actor

    return Actor(getpass.getuser(), kind="cli")


def walk(paths: Iterable[Path]) -> Iterator[Path]:
    """Every file under *paths* (directories recursively, in name order); hidden entries skipped."""
    for path in paths:
        if path.is_dir():
            for root, dirs, files in os.walk(path):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                for name in sorted(files):
                    if not name.startswith("."):
                        yield Path(root) / name
        else:
            yield path


def classify(path: Path) -> str | None:
    """Why *path* is not a file to load (``"not DICOM"``, ``"DICOMDIR"``), or None when it is one.

    A DICOM file has the Part 10 preamble and ``DICM`` prefix (PS3.10 §7.1); a DICOMDIR is the
    File-set's directory, not an instance.
    """
    try:
        with path.open("rb") as f:
            head = f.read(132)
    except OSError:
        return None  # let the store say what is wrong with it
    if len(head) < 132 or head[128:132] != b"DICM":
        return "not DICOM"
    if path.name.upper() == "DICOMDIR":
        return "DICOMDIR"
    return None


@dataclass
class Summary:
    """What a bulk command did, file by file where it matters."""

    counts: dict[str, int] = field(default_factory=dict)
    failures: list[tuple[Path, str]] = field(default_factory=list)
    files: int = 0
    bytes: int = 0

    def count(self, what: str) -> None:
        """One more file with outcome *what*."""
        self.counts[what] = self.counts.get(what, 0) + 1

    def print(self, title: str, order: list[str], started: float, failed: str = "REFUSED") -> None:
        """The per-file failures, then one line per outcome."""
        for path, reason in self.failures:
            print(f"{failed} {path}: {reason}")
        seconds = time.monotonic() - started
        print(f"{title}: {self.files} files, {self.bytes / 1e6:.1f} MB in {seconds:.1f} s")
        for what in order:
            print(f"  {what:<22} {self.counts.get(what, 0)}")


def _sizes(files: list[Path]) -> int:
    total = 0
    for path in files:
        with contextlib.suppress(OSError):
            total += path.stat().st_size
    return total


def _storage_settings(args: argparse.Namespace) -> Any:
    from storage.settings import StorageSettings

    return StorageSettings(**({"data_dir": args.data_dir} if args.data_dir is not None else {}))


IMPORT_OUTCOMES = ["stored", "duplicates", "new versions", "refused", "skipped (not DICOM)", "skipped (DICOMDIR)"]
DRY_RUN_OUTCOMES = ["would be stored", "refused", "skipped (not DICOM)", "skipped (DICOMDIR)"]


def cmd_import(args: argparse.Namespace) -> int:
    """Load files and folders into the archive through the one ingest path."""
    from storage.archive import Archive
    from storage.errors import IndexUnavailable, InvalidInstance, StorageUnavailable
    from storage.factory import open_archive
    from storage.ingest.index_writer import StoreOutcome

    missing = [p for p in args.paths if not p.exists()]
    if missing:
        print(f"error: no such file or directory: {', '.join(map(str, missing))}", file=sys.stderr)
        return 2
    files = list(walk(args.paths))
    actor = cli_actor()
    archive = None if args.dry_run else open_archive(_storage_settings(args))
    summary, started = Summary(), time.monotonic()
    outcome_name = {
        StoreOutcome.STORED: "stored",
        StoreOutcome.DUPLICATE: "duplicates",
        StoreOutcome.NEW_VERSION: "new versions",
    }
    with progress_bar("import", len(files), _sizes(files), enabled=args.progress) as bar:
        for path in files:
            size = path.stat().st_size if path.is_file() else 0
            summary.files += 1
            summary.bytes += size
            skip = classify(path)
            try:
                if skip is not None:
                    summary.count(f"skipped ({skip})")
                elif archive is None:
                    Archive.examine(path, actor)
                    summary.count("would be stored")
                else:
                    summary.count(outcome_name[archive.store_file(path, actor).outcome])
            except InvalidInstance as exc:
                summary.count("refused")
                summary.failures.append((path, str(exc)))
            except (StorageUnavailable, IndexUnavailable) as exc:
                summary.print("import stopped", IMPORT_OUTCOMES, started)
                print(f"error: {exc}; the files after {path} were not imported", file=sys.stderr)
                return 1
            bar.advance(size)
    if args.dry_run:
        summary.print("dry run", DRY_RUN_OUTCOMES, started)
    else:
        summary.print("import", IMPORT_OUTCOMES, started)
    return 1 if summary.failures else 0


def cmd_export(args: argparse.Namespace) -> int:
    """Write the originals of a component or an inspection to a folder, optionally with a DICOMDIR."""
    from storage.errors import InvalidQuery, NotFound
    from storage.factory import open_archive
    from storage.records.export import export

    archive = open_archive(_storage_settings(args))
    try:
        report = export(
            archive, cli_actor(), args.directory, serial=args.serial, study=args.study, dicomdir=args.dicomdir
        )
    except (NotFound, InvalidQuery) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    what = f"serial {args.serial}" if args.serial else f"inspection {args.study}"
    layout = "a DICOM File-set with DICOMDIR" if args.dicomdir else "originals"
    print(
        f"export: {what}: {len(report.studies)} inspections, {report.instances} instances "
        f"({report.bytes / 1e6:.1f} MB) written to {args.directory} as {layout}"
    )
    return 0


PUSH_OUTCOMES = ["sent", "sent with a warning", "failed", "retried", "skipped (not DICOM)", "skipped (DICOMDIR)"]


def cmd_push(args: argparse.Namespace) -> int:
    """C-STORE files and folders to a DICOM peer, each file as it is stored."""
    from pacs.push import FileToSend, describe_file, parse_address, push_files

    try:
        host, port = parse_address(args.to)
    except ValueError as exc:
        print(f"error: --to {exc}", file=sys.stderr)
        return 2
    if args.parallel < 1:
        print("error: --parallel must be at least 1", file=sys.stderr)
        return 2
    missing = [p for p in args.paths if not p.exists()]
    if missing:
        print(f"error: no such file or directory: {', '.join(map(str, missing))}", file=sys.stderr)
        return 2
    summary, started = Summary(), time.monotonic()
    to_send: list[FileToSend] = []
    for path in walk(args.paths):
        summary.files += 1
        skip = classify(path)
        if skip is not None:
            summary.count(f"skipped ({skip})")
            continue
        try:
            to_send.append(describe_file(path))
        except ValueError as exc:
            summary.count("failed")
            summary.failures.append((path, str(exc)))
    summary.bytes = sum(f.size for f in to_send)
    if not args.verbose:  # a refused connection is reported once below, not by pynetdicom per attempt
        logging.getLogger("pynetdicom").setLevel(logging.CRITICAL)
    with progress_bar(f"push to {args.aec}", len(to_send), summary.bytes, enabled=args.progress) as bar:
        report = push_files(
            to_send,
            host=host,
            port=port,
            called_ae=args.aec,
            calling_ae=args.aet,
            parallel=args.parallel,
            done=lambda item: bar.advance(item.size),
        )
    if to_send and not report.sent and all(why.startswith("association with") for _, why in report.failed):
        print(f"error: {report.failed[0][1]} (is the peer running, and does it accept {args.aec}?)", file=sys.stderr)
        return 1
    summary.counts["sent"] = len(report.sent) - len(report.warnings)
    summary.counts["sent with a warning"] = len(report.warnings)
    summary.counts["failed"] = summary.counts.get("failed", 0) + len(report.failed)
    summary.counts["retried"] = report.retried
    summary.failures += [(item.path, why) for item, why in report.failed]
    for item, why in report.warnings:
        print(f"WARNING {item.path}: {why}")
    summary.print(f"push to {args.aec}@{host}:{port}", PUSH_OUTCOMES, started, failed="FAILED")
    return 1 if summary.failures else 0


def add_commands(sub: Any, data_dir: Any) -> None:
    """Add ``import``, ``push`` and ``export`` to the ``pacs`` subparsers *sub*.

    *data_dir* adds the ``--data-dir`` option to a parser.
    """
    imp = sub.add_parser(
        "import",
        help="load DICOM files and folders into the archive",
        description="Load DICOM files and folders (recursively) into the archive: the same checks and "
        "duplicate policy as a C-STORE. Identical files already stored are no-ops, so it is safe to run "
        "again. Exit 1 when any file was refused.",
    )
    data_dir(imp)
    imp.add_argument("paths", metavar="PATH", type=Path, nargs="+", help="files or folders to load")
    imp.add_argument("--dry-run", action="store_true", help="check every file, store nothing")
    _progress_option(imp)
    imp.set_defaults(func=cmd_import)

    exp = sub.add_parser(
        "export",
        help="write the originals of a component or inspection to a folder",
        description="Write the stored originals (byte-exact) of one component (--serial) or one "
        "inspection (--study) to DIR, a new or empty folder. With --dicomdir, as a DICOM File-set "
        "(PS3.10) with a DICOMDIR, the way results go to customers on media. Audited.",
    )
    data_dir(exp)
    which = exp.add_mutually_exclusive_group(required=True)
    which.add_argument("--serial", metavar="S", help="the component's serial number (PatientID)")
    which.add_argument("--study", metavar="UID", help="the inspection's StudyInstanceUID")
    exp.add_argument("directory", metavar="DIR", type=Path, help="the folder to write (new or empty)")
    exp.add_argument("--dicomdir", action="store_true", help="write a DICOM File-set with a DICOMDIR")
    exp.set_defaults(func=cmd_export)

    push = sub.add_parser(
        "push",
        help="send DICOM files and folders to a DICOM peer (C-STORE)",
        description="Send DICOM files and folders (recursively) to any DICOM peer with C-STORE, each "
        "file exactly as it is stored (one presentation context per SOP class and transfer syntax). "
        "Failures are retried once, then listed; exit 1 when any file failed.",
    )
    push.add_argument("paths", metavar="PATH", type=Path, nargs="+", help="files or folders to send")
    push.add_argument("--to", required=True, metavar="HOST:PORT", help="the peer's address")
    push.add_argument("--aec", default="ANY-SCP", metavar="AET", help="the peer's (called) AE title (default ANY-SCP)")
    push.add_argument("--aet", default="NDTPACS-PUSH", metavar="AET", help="our (calling) AE title")
    push.add_argument("--parallel", type=int, default=1, metavar="N", help="associations at once (default 1)")
    _progress_option(push)
    push.set_defaults(func=cmd_push)


def _progress_option(parser: argparse.ArgumentParser) -> None:
    bar = parser.add_mutually_exclusive_group()
    bar.add_argument(
        "--progress", action="store_true", default=None, help="always draw the progress bar (default: on a terminal)"
    )
    bar.add_argument("--no-progress", dest="progress", action="store_false", help="never draw the progress bar")
