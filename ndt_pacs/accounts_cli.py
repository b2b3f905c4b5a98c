"""``pacs user`` and ``pacs token``: accounts, NDT qualifications and bearer tokens (DESIGN.md, Accounts).

Each command is one unit of work on the index (``PACS_DATA_DIR`` / ``PACS_DATABASE_URL``, like
``pacs serve``); the change and its audit entry are committed together. The command line acts
as the operating-system user who runs it (``system:pacs user (NAME)`` in the audit log).
"""

from __future__ import annotations

import argparse
import getpass
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from sqlalchemy.orm import Session

from storage.audit import Actor
from storage.errors import NotFound
from storage.index.db import Database
from storage.records import accounts
from storage.records.permissions import METHODS, ROLES
from storage.settings import StorageSettings

T = TypeVar("T")


def _database(args: argparse.Namespace) -> Database:
    from storage.index import migrate

    settings = StorageSettings(**({"data_dir": args.data_dir} if getattr(args, "data_dir", None) else {}))
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    db = Database(settings.resolved_database_url)
    if db.is_sqlite and not migrate.is_current(db.engine):
        migrate.upgrade(db.engine)  # the embedded default creates its index on first use, like `pacs serve`
    elif not migrate.is_current(db.engine):
        raise SystemExit("pacs: the index database schema is not current: run `pacs db upgrade` first")
    return db


def _actor(command: str) -> Actor:
    return Actor(f"pacs {command} ({getpass.getuser()})", kind="system")


def _done(work: Callable[[Session], object]) -> Callable[[Session], bool]:
    """*work* returning True, for :func:`_run` (None means it failed)."""

    def run(session: Session) -> bool:
        work(session)
        return True

    return run


def _run(args: argparse.Namespace, work: Callable[[Session], T]) -> T | None:
    """Run *work* in one committed transaction; print account errors and return None."""
    db = _database(args)
    try:
        return db.write(work)
    except (accounts.AccountError, NotFound) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return None
    finally:
        db.dispose()


def _read_password(args: argparse.Namespace) -> str | None:
    if not args.password_stdin:
        return None
    line = sys.stdin.readline()
    password = line.rstrip("\r\n")
    if not password:
        raise SystemExit("error: --password-stdin: no password on standard input")
    return password


def cmd_user_add(args: argparse.Namespace) -> int:
    """Create an account."""
    password = _read_password(args)
    info = _run(
        args,
        lambda s: accounts.add_user(
            s,
            _actor("user"),
            args.name,
            args.role,
            full_name=args.full_name or "",
            email=args.email,
            password=password,
        ),
    )
    if info is None:
        return 2
    login = "password set" if password else "no password (tokens only, or `pacs user passwd`)"
    print(f"added {info.username} ({info.role}); {login}")
    return 0


def cmd_user_list(args: argparse.Namespace) -> int:
    """List the accounts and their qualifications."""
    users = _run(args, accounts.list_users) or []
    today = accounts.now_utc().date()
    print(f"{'name':<20}  {'role':<10}  {'state':<8}  full name")
    for user in users:
        print(f"{user.username:<20}  {user.role:<10}  {'active' if user.active else 'disabled':<8}  {user.full_name}")
        for cert in user.qualifications:
            problem = cert.problem(today)
            vision = cert.vision_test.isoformat() if cert.vision_test else "-"
            print(
                f"{'':<22}{cert.method} Level {cert.level}  cert {cert.certificate}  {cert.issuer or '-'}  "
                f"until {cert.valid_until.isoformat()}  vision test {vision}  "
                f"{'valid' if problem is None else 'NOT VALID: ' + problem}"
            )
    return 0


def cmd_user_disable(args: argparse.Namespace) -> int:
    """Disable an account (accounts are never deleted)."""
    if _run(args, _done(lambda s: accounts.disable_user(s, _actor("user"), args.name))) is None:
        return 2
    print(f"disabled {args.name}")
    return 0


def cmd_user_passwd(args: argparse.Namespace) -> int:
    """Set an account's password (read from standard input)."""
    password = _read_password(args)
    assert password is not None
    if _run(args, _done(lambda s: accounts.set_password(s, _actor("user"), args.name, password))) is None:
        return 2
    print(f"password of {args.name} changed")
    return 0


def cmd_user_qualify(args: argparse.Namespace) -> int:
    """Record an NDT qualification."""
    cert = _run(
        args,
        lambda s: accounts.qualify(
            s,
            _actor("user"),
            args.name,
            method=args.method,
            level=args.level,
            certificate=args.cert,
            issuer=args.issuer or "",
            valid_from=args.valid_from,
            valid_until=args.valid_until,
            vision_test=args.vision_test,
        ),
    )
    if cert is None:
        return 2
    problem = cert.problem(accounts.now_utc().date())
    print(
        f"{args.name}: {cert.method} Level {cert.level}, certificate {cert.certificate}, "
        f"valid until {cert.valid_until.isoformat()}" + (f" (NOT VALID today: {problem})" if problem else "")
    )
    return 0


def cmd_token_create(args: argparse.Namespace) -> int:
    """Create a bearer token; the token is printed alone on the last line, once."""
    made = _run(args, lambda s: accounts.create_token(s, _actor("token"), args.name, expires_days=args.expires_days))
    if made is None:
        return 2
    info, secret = made
    expiry = info.expires_at.isoformat(timespec="seconds") if info.expires_at else "never"
    print(f"token {info.id} for {info.username}, expires {expiry}; shown only now, store it safely:")
    print(secret)
    return 0


def cmd_token_list(args: argparse.Namespace) -> int:
    """List tokens (never the tokens themselves)."""
    tokens = _run(args, accounts.list_tokens) or []
    now = accounts.now_utc()
    print(f"{'id':>5}  {'user':<20}  {'prefix':<13}  {'state':<8}  {'expires':<20}  last used")
    for t in tokens:
        expires = t.expires_at.isoformat(timespec="seconds") if t.expires_at else "never"
        used = t.last_used_at.isoformat(timespec="seconds") if t.last_used_at else "-"
        print(f"{t.id:>5}  {t.username:<20}  {t.prefix + '…':<13}  {t.state(now):<8}  {expires:<20}  {used}")
    return 0


def cmd_token_revoke(args: argparse.Namespace) -> int:
    """Revoke a token by id."""
    if _run(args, _done(lambda s: accounts.revoke_token(s, _actor("token"), args.id))) is None:
        return 2
    print(f"revoked token {args.id}")
    return 0


def add_account_commands(sub: argparse._SubParsersAction, data_dir: Callable[[argparse.ArgumentParser], None]) -> None:
    """Add the ``user`` and ``token`` command groups to the ``pacs`` parser."""
    user = sub.add_parser("user", help="accounts and NDT qualifications").add_subparsers(
        dest="user_command", required=True
    )
    add = user.add_parser("add", help="create an account")
    data_dir(add)
    add.add_argument("name", metavar="NAME", help="login name (a-z 0-9 . _ @ -)")
    add.add_argument("--role", required=True, choices=list(ROLES), help="what the account may do")
    add.add_argument("--full-name", help="full name as printed on reports and signatures")
    add.add_argument("--email", help="e-mail address")
    add.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    add.set_defaults(func=cmd_user_add)

    listing = user.add_parser("list", help="list accounts and qualifications")
    data_dir(listing)
    listing.set_defaults(func=cmd_user_list)

    disable = user.add_parser("disable", help="disable an account (refused at once; never deleted)")
    data_dir(disable)
    disable.add_argument("name", metavar="NAME")
    disable.set_defaults(func=cmd_user_disable)

    passwd = user.add_parser("passwd", help="set an account's password")
    data_dir(passwd)
    passwd.add_argument("name", metavar="NAME")
    passwd.add_argument("--password-stdin", action="store_true", required=True, help="read it from standard input")
    passwd.set_defaults(func=cmd_user_passwd)

    qual = user.add_parser("qualify", help="record an NDT qualification (ISO 9712 / NAS 410 / SNT-TC-1A)")
    data_dir(qual)
    qual.add_argument("name", metavar="NAME")
    qual.add_argument("--method", required=True, type=str.upper, help=f"NDT method: {', '.join(METHODS)}")
    qual.add_argument("--level", required=True, type=int, choices=[1, 2, 3])
    qual.add_argument("--cert", required=True, help="certificate number")
    qual.add_argument("--issuer", help="certifying body")
    qual.add_argument("--valid-from", metavar="YYYY-MM-DD")
    qual.add_argument("--valid-until", required=True, metavar="YYYY-MM-DD")
    qual.add_argument("--vision-test", metavar="YYYY-MM-DD", help="date of the last near-vision test")
    qual.set_defaults(func=cmd_user_qualify)

    token = sub.add_parser("token", help="bearer tokens for scripts and DICOMweb clients").add_subparsers(
        dest="token_command", required=True
    )
    create = token.add_parser("create", help="create a token (printed once, alone on the last line)")
    data_dir(create)
    create.add_argument("name", metavar="NAME", help="the account the token acts as")
    create.add_argument("--expires-days", type=int, metavar="N", help="expire after N days (default: never)")
    create.set_defaults(func=cmd_token_create)
    tlist = token.add_parser("list", help="list tokens")
    data_dir(tlist)
    tlist.set_defaults(func=cmd_token_list)
    revoke = token.add_parser("revoke", help="revoke a token")
    data_dir(revoke)
    revoke.add_argument("id", metavar="ID", type=int)
    revoke.set_defaults(func=cmd_token_revoke)


def first_admin_hint(data_dir: Path | None = None) -> str:
    """What to run to create the first admin (logged once by `pacs serve` on an archive without one)."""
    where = f" --data-dir {data_dir}" if data_dir else ""
    return (
        "no admin account yet: create one with "
        f"`pacs user add admin --role admin --full-name 'Your Name' --password-stdin{where}`"
    )
