"""The ``pacs`` command line."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ndt_pacs import audit_cli
from ndt_pacs.logs import configure_logging
from pacs.settings import DicomSettings
from storage import __version__
from storage.settings import StorageSettings
from viewer.settings import HttpSettings


def _overrides(args: argparse.Namespace, names: list[str]) -> dict[str, Any]:
    return {name: getattr(args, name) for name in names if getattr(args, name, None) is not None}


def _storage_settings(args: argparse.Namespace) -> StorageSettings:
    return StorageSettings(**_overrides(args, ["data_dir"]))


def cmd_serve(args: argparse.Namespace) -> int:
    """Run the archive."""
    from ndt_pacs.serve import serve

    serve(
        _storage_settings(args),
        DicomSettings(**_overrides(args, ["host", "dicom_port", "ae_title", "dicom_workers"])),
        HttpSettings(**_overrides(args, ["host", "http_port"])),
        dicom_enabled=not args.no_dicom,
        http_enabled=not args.no_http,
    )
    return 0


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    """Apply the index migrations."""
    from storage.index import migrate
    from storage.index.db import Database

    settings = _storage_settings(args)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    db = Database(settings.resolved_database_url)
    migrate.upgrade(db.engine)
    print("index schema is current")
    return 0


def cmd_storage_init(args: argparse.Namespace) -> int:
    """Create the object store (the S3 bucket) when missing and check it answers."""
    from storage.errors import StorageUnavailable
    from storage.factory import open_object_store

    settings = _storage_settings(args)
    try:
        store = open_object_store(settings)
    except StorageUnavailable as exc:
        print(f"object store unavailable: {exc}", file=sys.stderr)
        return 1
    if not store.check():
        print(f"object store {settings.resolved_storage_url} is not reachable or not writable", file=sys.stderr)
        return 1
    print(f"object store {settings.resolved_storage_url} is ready")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    """Fixity: re-hash every stored object against the index."""
    from storage.factory import open_archive
    from storage.ingest.intake import Intake
    from storage.records.fixity import find_orphans, verify_objects

    archive = open_archive(_storage_settings(args))
    report = verify_objects(archive)
    for problem in report.problems:
        print(f"FAILED: {problem}")
    print(f"{report.checked} objects checked, {len(report.problems)} problems")
    orphans = find_orphans(archive, remove=args.sweep_orphans)
    for key in orphans.found:
        print(f"{'removed' if key in orphans.removed else 'orphan'}: {key}")
    print(
        f"{len(orphans.found)} unindexed objects (failed stores) older than an hour"
        + (f", {len(orphans.removed)} removed" if args.sweep_orphans else "; remove them with --sweep-orphans")
    )
    intake = Intake(_storage_settings(args).intake_dir)
    waiting, set_aside = intake.entries(), intake.rejected()
    for path in set_aside:
        print(f"SET ASIDE: {path} (acknowledged, could not be indexed)")
    print(f"intake: {len(waiting)} acknowledged objects waiting for the indexer, {len(set_aside)} set aside")
    return 0 if not report.problems and not set_aside else 1


def cmd_demo(args: argparse.Namespace) -> int:
    """Generate the synthetic DICONDE demo data set and push it over C-STORE (or write files)."""
    from ndt_pacs.demo import DEMO_SOP_CLASSES, generate_demo
    from pacs.push import PushError, parse_address, push_datasets

    datasets = generate_demo(seed=args.seed, count=args.count, scale=args.scale)
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        written = 0
        for ds in datasets:
            ds.save_as(args.out / f"{ds.Modality}_{ds.SOPInstanceUID}.dcm", enforce_file_format=True)
            written += 1
        print(f"wrote {written} demo files to {args.out}")
        return 0
    try:
        host, port = parse_address(args.to or f"127.0.0.1:{DicomSettings().dicom_port}")
    except ValueError as exc:
        print(f"error: --to {exc}", file=sys.stderr)
        return 2
    ae_title = args.ae_title or DicomSettings().ae_title

    def progress(done: int, ds: Any) -> None:
        if done % 10 == 0:
            print(f"  {done} instances sent ...", flush=True)

    try:
        report = push_datasets(
            datasets, host=host, port=port, sop_classes=DEMO_SOP_CLASSES, called_ae=ae_title, progress=progress
        )
    except (PushError, OSError) as exc:
        print(f"error: {exc} (is `pacs serve` running?)", file=sys.stderr)
        return 1
    print(f"demo: {report.sent} instances ({report.bytes / 1e6:.1f} MB pixel data) stored at {ae_title}@{host}:{port}")
    for uid, code in report.failed:
        print(f"FAILED: {uid} status 0x{code & 0xFFFF:04X}")
    return 0 if not report.failed else 1


def _peer_registry(args: argparse.Namespace) -> Any:
    from storage.factory import open_archive
    from storage.records.peers import PeerRegistry

    return PeerRegistry(open_archive(_storage_settings(args)).db)


def _cli_actor() -> Any:
    import getpass

    from storage.audit import Actor

    return Actor(f"pacs peer ({getpass.getuser()})", kind="system")


def cmd_peer_add(args: argparse.Namespace) -> int:
    """Register a known DICOM peer."""
    from storage.records.peers import PERMISSIONS, InvalidPeer

    allow = PERMISSIONS if args.allow is None else args.allow.split(",")
    try:
        peer = _peer_registry(args).add(
            args.ae_title,
            args.host,
            args.port,
            _cli_actor(),
            allow=allow,
            description=args.description or "",
            user=args.user,
        )
    except InvalidPeer as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    acts_as = f" as device account {peer.user}" if peer.user else ""
    print(f"added {peer.ae_title} {peer.host}:{peer.port} allow={','.join(peer.permissions) or '-'}{acts_as}")
    return 0


def cmd_peer_list(args: argparse.Namespace) -> int:
    """List the known DICOM peers."""
    peers = _peer_registry(args).list()
    print(f"{'AE title':<16}  {'address':<28}  {'allow':<26}  description")
    for peer in peers:
        address = f"{peer.host}:{peer.port}"
        acts_as = f" [device account {peer.user}]" if peer.user else ""
        print(
            f"{peer.ae_title:<16}  {address:<28}  {','.join(peer.permissions) or '-':<26}  {peer.description}{acts_as}"
        )
    return 0


def cmd_peer_remove(args: argparse.Namespace) -> int:
    """Remove a known DICOM peer."""
    from storage.errors import NotFound
    from storage.records.peers import InvalidPeer

    try:
        _peer_registry(args).remove(args.ae_title, _cli_actor())
    except (InvalidPeer, NotFound) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"removed {args.ae_title}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = argparse.ArgumentParser(prog="pacs", description="ndt-pacs: NDT image archive (DICOM / DICONDE)")
    parser.add_argument("--version", action="version", version=f"ndt-pacs {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    def data_dir(p: argparse.ArgumentParser) -> None:
        p.add_argument("--data-dir", type=Path, help="data directory (PACS_DATA_DIR, default ./pacs-data)")

    serve = sub.add_parser("serve", help="run the DICOM listener and the HTTP server")
    data_dir(serve)
    serve.add_argument("--host", help="address to bind (PACS_HOST, default 0.0.0.0)")
    serve.add_argument("--dicom-port", type=int, help="DICOM port (PACS_DICOM_PORT, default 11112)")
    serve.add_argument("--http-port", type=int, help="HTTP port (PACS_HTTP_PORT, default 8042)")
    serve.add_argument("--ae-title", help="our AE title (PACS_AE_TITLE, default NDTPACS)")
    serve.add_argument(
        "--dicom-workers",
        type=int,
        help="DICOM receiver processes sharing the port, to use several cores (PACS_DICOM_WORKERS, default 1)",
    )
    only = serve.add_mutually_exclusive_group()
    only.add_argument("--no-http", action="store_true", help="DICOM receiver only (scale receivers separately)")
    only.add_argument("--no-dicom", action="store_true", help="HTTP server only (scale HTTP nodes separately)")
    serve.set_defaults(func=cmd_serve)

    db = sub.add_parser("db", help="index database").add_subparsers(dest="db_command", required=True)
    upgrade = db.add_parser("upgrade", help="apply migrations (PACS_DATABASE_URL)")
    data_dir(upgrade)
    upgrade.set_defaults(func=cmd_db_upgrade)

    storage = sub.add_parser("storage", help="object store").add_subparsers(dest="storage_command", required=True)
    storage_init = storage.add_parser("init", help="create the bucket if missing (PACS_STORAGE_URL)")
    data_dir(storage_init)
    storage_init.set_defaults(func=cmd_storage_init)

    audit_cli.add_parsers(sub, data_dir)

    demo = sub.add_parser("demo", help="push a synthetic DICONDE demo data set over C-STORE")
    demo.add_argument("--to", help="HOST:PORT of the archive (default 127.0.0.1:PACS_DICOM_PORT)")
    demo.add_argument("--ae-title", help="called AE title (PACS_AE_TITLE, default NDTPACS)")
    demo.add_argument("--count", type=int, default=6, help="number of components (default 6)")
    demo.add_argument("--seed", type=int, default=0, help="random seed: same seed, same data set (default 0)")
    demo.add_argument("--scale", type=float, default=1.0, help="image size factor (default 1.0: DX 2048x1024)")
    demo.add_argument("--out", type=Path, help="write Part 10 files to this directory instead of pushing")
    demo.set_defaults(func=cmd_demo)

    verify = sub.add_parser("verify", help="fixity: re-hash objects against the index, list unindexed objects")
    data_dir(verify)
    verify.add_argument(
        "--sweep-orphans",
        action="store_true",
        help="remove objects older than an hour that no index row names (left by failed stores)",
    )
    verify.set_defaults(func=cmd_verify)

    peer = sub.add_parser("peer", help="known DICOM peers").add_subparsers(dest="peer_command", required=True)
    peer_add = peer.add_parser("add", help="register a peer (C-MOVE destination, allowed sender)")
    data_dir(peer_add)
    peer_add.add_argument("ae_title", metavar="AET", help="the peer's AE title (1-16 characters)")
    peer_add.add_argument("--host", required=True, help="host name or IP address the peer connects from and listens on")
    peer_add.add_argument("--port", type=int, required=True, help="the peer's DICOM port")
    peer_add.add_argument(
        "--allow", help="comma-separated permissions: store,query,retrieve,move (default: all); '' for none"
    )
    peer_add.add_argument("--description", help="free text")
    peer_add.add_argument(
        "--user", metavar="NAME", help="the device account this peer acts as (its C-STORE and STOW-RS: one actor)"
    )
    peer_add.set_defaults(func=cmd_peer_add)
    peer_list = peer.add_parser("list", help="list known peers")
    data_dir(peer_list)
    peer_list.set_defaults(func=cmd_peer_list)
    peer_remove = peer.add_parser("remove", help="remove a peer")
    data_dir(peer_remove)
    peer_remove.add_argument("ae_title", metavar="AET")
    peer_remove.set_defaults(func=cmd_peer_remove)

    from ndt_pacs.transfer_cli import add_commands

    add_commands(sub, data_dir)

    from ndt_pacs.accounts_cli import add_account_commands

    add_account_commands(sub, data_dir)
    _describe(parser)
    return parser


def _describe(parser: argparse.ArgumentParser) -> None:
    """Give every subcommand's own ``--help`` the one-line summary ``pacs --help`` shows for it."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            summaries = {choice.dest: choice.help for choice in action._choices_actions}
            for name, subparser in action.choices.items():
                if subparser.description is None and summaries.get(name):
                    subparser.description = summaries[name]
                _describe(subparser)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``pacs`` console script."""
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else argv
    if not argv:  # plain `pacs`: what it can do
        parser.print_help()
        return 0
    args = parser.parse_args(argv)
    configure_logging(verbose=args.verbose)
    from storage.errors import ArchiveError

    try:
        return int(args.func(args) or 0)
    except ArchiveError as exc:  # expected failures (a backend down, bad input): one line, no traceback
        if args.verbose:
            raise
        print(f"pacs: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
