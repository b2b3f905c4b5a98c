"""Accounts: users, NDT qualifications, tokens, browser sessions and failed logins.

Every function takes the caller's SQLAlchemy session (one unit of work), flushes, and
writes its own audit entry in that session; the caller commits. Passwords are hashed
with argon2id (argon2-cffi); tokens and session cookies are random and only their
SHA-256 is stored. Failed logins are kept in the database so that every HTTP process
applies the same rate limit, per account name (known or not) and per address.
Accounts are never deleted, only disabled, so history stays resolvable.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import re
import secrets
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from storage import audit
from storage.audit import Actor, AuditRecord, utc
from storage.errors import ArchiveError, NotFound
from storage.index.db import Database
from storage.index.models import ApiToken, LoginFailure, LoginSession, Qualification, User
from storage.records.permissions import METHODS, ROLES, Certificate, Decision, decide

MIN_PASSWORD_LENGTH = 12
FAILURE_WINDOW = timedelta(minutes=15)
MAX_FAILURES_PER_ACCOUNT = 5  # within FAILURE_WINDOW, for one account name (known or not)
MAX_FAILURES_PER_ADDRESS = 20  # within FAILURE_WINDOW, from one address
TOKEN_PREFIX = "pacs_"
_USERNAME = re.compile(r"^[a-z0-9][a-z0-9._@-]{0,63}$")
_HASHER = PasswordHasher()  # argon2id with the library's current recommended parameters
_DUMMY_HASH = _HASHER.hash("not a password of anyone " + secrets.token_hex(8))


class AccountError(ArchiveError):
    """An account change that cannot be made (bad name, role, password, date, ...)."""


def now_utc() -> datetime:
    """The current time, aware, in UTC."""
    return datetime.now(UTC)


@dataclass(frozen=True)
class Identity:
    """An authenticated account, detached from the database session."""

    user_id: int
    username: str
    full_name: str
    role: str
    email: str | None = None
    certificates: tuple[Certificate, ...] = ()

    def actor(self, address: str | None = None) -> Actor:
        """This account as the audit log names it (``user:NAME`` or ``device:NAME``)."""
        return Actor(
            name=self.username, address=address, kind="device" if self.role == "device" else "user", role=self.role
        )

    def decide(self, permission: str, *, on: date | None = None, method: str | None = None) -> Decision:
        """May this account use *permission* (for *method*) on *on* (today)?"""
        return decide(self.role, permission, self.certificates, on or now_utc().date(), method=method)


@dataclass(frozen=True)
class UserInfo:
    """An account as ``pacs user list`` shows it."""

    username: str
    full_name: str
    email: str | None
    role: str
    active: bool
    created_at: datetime
    qualifications: tuple[Certificate, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class TokenInfo:
    """A token as ``pacs token list`` shows it (never the token itself)."""

    id: int
    username: str
    prefix: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None

    def state(self, now: datetime) -> str:
        """``active``, ``revoked`` or ``expired``."""
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and utc(self.expires_at) <= now:
            return "expired"
        return "active"


@dataclass(frozen=True)
class LoginResult:
    """The outcome of a password check: the identity, or why not (never whether the name exists)."""

    identity: Identity | None
    throttled: bool = False


@dataclass(frozen=True)
class SessionInfo:
    """A live browser session."""

    session_id: int
    identity: Identity
    csrf_token: str
    stale: bool  # last_seen_at should be moved forward (see touch_session)


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


# --- validation -------------------------------------------------------------------------------


def validate_username(name: str) -> str:
    """A login name: 1-64 of a-z 0-9 . _ @ -, starting with a letter or digit (stored in lower case)."""
    value = name.strip().lower()
    if not _USERNAME.match(value):
        raise AccountError(f"invalid user name {name[:80]!r}: 1-64 of a-z 0-9 . _ @ -, starting with a letter or digit")
    return value


def validate_role(role: str) -> str:
    """One of :data:`storage.records.permissions.ROLES`."""
    if role not in ROLES:
        raise AccountError(f"unknown role {role!r}; choose from {', '.join(ROLES)}")
    return role


@lru_cache(maxsize=1)
def common_passwords() -> frozenset[str]:
    """The small list of common passwords refused (``common_passwords.txt`` beside this module)."""
    text = (Path(__file__).parent / "common_passwords.txt").read_text(encoding="utf-8")
    return frozenset(line.strip().lower() for line in text.splitlines() if line.strip() and not line.startswith("#"))


def check_password_policy(password: str, username: str) -> None:
    """Refuse passwords shorter than :data:`MIN_PASSWORD_LENGTH`, common ones, and ones built on the name."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise AccountError(f"password too short: at least {MIN_PASSWORD_LENGTH} characters")
    if len(password) > 1024:
        raise AccountError("password too long: at most 1024 characters")
    lowered = password.lower()
    if lowered in common_passwords() or len(set(password)) < 4:
        raise AccountError("password too common: choose another")
    if username and username.lower() in lowered:
        raise AccountError("password may not contain the user name")


def _date(value: date | str | None, what: str) -> date | None:
    if value is None or isinstance(value, date):
        return value
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise AccountError(f"{what} must be a date YYYY-MM-DD: {value[:40]!r}") from None


# --- reading ----------------------------------------------------------------------------------


def _certificates(session: Session, user_id: int) -> tuple[Certificate, ...]:
    rows = session.scalars(
        select(Qualification).where(Qualification.user_id == user_id).order_by(Qualification.id)
    ).all()
    return tuple(
        Certificate(
            method=row.method,
            level=row.level,
            certificate=row.certificate,
            issuer=row.issuer,
            valid_from=row.valid_from,
            valid_until=row.valid_until,
            vision_test=row.vision_test,
        )
        for row in rows
    )


def _identity(session: Session, user: User) -> Identity:
    return Identity(
        user_id=user.id,
        username=user.username,
        full_name=user.full_name,
        role=user.role,
        email=user.email,
        certificates=_certificates(session, user.id),
    )


def _user(session: Session, name: str) -> User:
    row = session.scalars(select(User).where(User.username == validate_username(name))).one_or_none()
    if row is None:
        raise NotFound(f"no user {name[:64]}")
    return row


def identity_of(session: Session, name: str) -> Identity:
    """The account called *name* (active or not); :class:`NotFound` when unknown."""
    return _identity(session, _user(session, name))


def list_users(session: Session) -> list[UserInfo]:
    """Every account, by name."""
    return [
        UserInfo(
            username=row.username,
            full_name=row.full_name,
            email=row.email,
            role=row.role,
            active=row.active,
            created_at=row.created_at,
            qualifications=_certificates(session, row.id),
        )
        for row in session.scalars(select(User).order_by(User.username))
    ]


def has_active_admin(session: Session) -> bool:
    """True when some active admin account exists (a fresh archive has none)."""
    return session.scalar(select(User.id).where(User.role == "admin", User.active.is_(True)).limit(1)) is not None


# --- changing accounts ------------------------------------------------------------------------


def _audit(session: Session, actor: Actor, action: str, outcome: str = "success", **detail: object) -> None:
    audit.append(session, AuditRecord(actor=actor, action=action, outcome=outcome, detail=dict(detail)))


def add_user(
    session: Session,
    actor: Actor,
    name: str,
    role: str,
    *,
    full_name: str = "",
    email: str | None = None,
    password: str | None = None,
) -> UserInfo:
    """Create an account; :class:`AccountError` when the name is taken or a field is invalid."""
    username = validate_username(name)
    validate_role(role)
    full = full_name.strip()
    if len(full) > 200 or any(ord(ch) < 0x20 for ch in full):
        raise AccountError("full name: at most 200 characters, no control characters")
    if email is not None and (len(email) > 254 or "@" not in email or any(ch.isspace() for ch in email)):
        raise AccountError(f"invalid e-mail address {email[:80]!r}")
    if password is not None:
        check_password_policy(password, username)
    if session.scalar(select(User.id).where(User.username == username)) is not None:
        raise AccountError(f"user {username} already exists (accounts are never deleted, only disabled)")
    row = User(
        username=username,
        full_name=full,
        email=email,
        role=role,
        active=True,
        password_hash=_HASHER.hash(password) if password is not None else None,
    )
    session.add(row)
    session.flush()
    _audit(session, actor, "user_add", user=username, role=role, full_name=full, password=password is not None)
    return UserInfo(username, full, email, role, True, row.created_at)


def set_password(session: Session, actor: Actor, name: str, password: str) -> None:
    """Replace an account's password; its browser sessions end."""
    row = _user(session, name)
    check_password_policy(password, row.username)
    row.password_hash = _HASHER.hash(password)
    session.execute(
        update(LoginSession)
        .where(LoginSession.user_id == row.id, LoginSession.ended_at.is_(None))
        .values(ended_at=now_utc())
    )
    session.flush()
    _audit(session, actor, "user_passwd", user=row.username)


def disable_user(session: Session, actor: Actor, name: str) -> None:
    """Disable an account: refused at once on every door (its sessions end; its tokens stop working)."""
    row = _user(session, name)
    if not row.active:
        raise AccountError(f"user {row.username} is already disabled")
    row.active = False
    row.disabled_at = now_utc()
    session.execute(
        update(LoginSession)
        .where(LoginSession.user_id == row.id, LoginSession.ended_at.is_(None))
        .values(ended_at=row.disabled_at)
    )
    session.flush()
    _audit(session, actor, "user_disable", user=row.username)


def qualify(
    session: Session,
    actor: Actor,
    name: str,
    *,
    method: str,
    level: int,
    certificate: str,
    valid_until: date | str,
    issuer: str = "",
    valid_from: date | str | None = None,
    vision_test: date | str | None = None,
) -> Certificate:
    """Record an NDT qualification of an inspector (ISO 9712 / NAS 410 / SNT-TC-1A)."""
    row = _user(session, name)
    if row.role != "inspector":
        raise AccountError(f"only inspectors hold NDT qualifications; {row.username} is {row.role}")
    meth = method.strip().upper()
    if meth not in METHODS:
        raise AccountError(f"unknown NDT method {method[:16]!r}; choose from {', '.join(METHODS)}")
    if level not in (1, 2, 3):
        raise AccountError(f"level must be 1, 2 or 3: {level!r}")
    cert = certificate.strip()
    if not cert or len(cert) > 100:
        raise AccountError("certificate number: 1-100 characters")
    until = _date(valid_until, "valid until")
    assert until is not None
    start = _date(valid_from, "valid from")
    vision = _date(vision_test, "vision test")
    if start is not None and start > until:
        raise AccountError("valid from is after valid until")
    qualification = Certificate(meth, level, cert, issuer.strip()[:200], start, until, vision)
    session.add(
        Qualification(
            user_id=row.id,
            method=meth,
            level=level,
            certificate=cert,
            issuer=qualification.issuer,
            valid_from=start,
            valid_until=until,
            vision_test=vision,
        )
    )
    session.flush()
    _audit(
        session,
        actor,
        "user_qualify",
        user=row.username,
        method=meth,
        level=level,
        certificate=cert,
        issuer=qualification.issuer,
        valid_from=start.isoformat() if start else None,
        valid_until=until.isoformat(),
        vision_test=vision.isoformat() if vision else None,
    )
    return qualification


# --- tokens -----------------------------------------------------------------------------------


def create_token(
    session: Session, actor: Actor, name: str, *, expires_days: int | None = None
) -> tuple[TokenInfo, str]:
    """A new bearer token for an active account: its description and the token (shown once, stored hashed)."""
    row = _user(session, name)
    if not row.active:
        raise AccountError(f"user {row.username} is disabled")
    if expires_days is not None and not 1 <= expires_days <= 3650:
        raise AccountError("--expires-days must be 1-3650")
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    created = now_utc()
    token = ApiToken(
        user_id=row.id,
        token_hash=_digest(secret),
        prefix=secret[:12],
        created_at=created,
        expires_at=created + timedelta(days=expires_days) if expires_days else None,
    )
    session.add(token)
    session.flush()
    _audit(session, actor, "token_create", user=row.username, token_id=token.id, expires_at=token.expires_at)
    return TokenInfo(token.id, row.username, token.prefix, created, token.expires_at, None, None), secret


def list_tokens(session: Session) -> list[TokenInfo]:
    """Every token (active, expired and revoked), by id."""
    rows = session.execute(
        select(ApiToken, User.username).join(User, User.id == ApiToken.user_id).order_by(ApiToken.id)
    )
    return [
        TokenInfo(t.id, username, t.prefix, t.created_at, t.expires_at, t.revoked_at, t.last_used_at)
        for t, username in rows
    ]


def revoke_token(session: Session, actor: Actor, token_id: int) -> None:
    """Revoke a token: refused from the next request on."""
    token = session.get(ApiToken, token_id)
    if token is None:
        raise NotFound(f"no token {token_id}")
    if token.revoked_at is not None:
        raise AccountError(f"token {token_id} is already revoked")
    token.revoked_at = now_utc()
    session.flush()
    _audit(session, actor, "token_revoke", token_id=token_id)


def lookup_token(session: Session, secret: str, now: datetime) -> tuple[Identity, int, bool] | None:
    """The active account of a live token, the token id, and whether its last use should be recorded."""
    if not secret.startswith(TOKEN_PREFIX) or len(secret) > 200:
        return None
    found = session.execute(
        select(ApiToken, User).join(User, User.id == ApiToken.user_id).where(ApiToken.token_hash == _digest(secret))
    ).one_or_none()
    if found is None:
        return None
    token, user = found
    if not user.active or token.revoked_at is not None:
        return None
    if token.expires_at is not None and utc(token.expires_at) <= now:
        return None
    stale = token.last_used_at is None or now - utc(token.last_used_at) > timedelta(minutes=5)
    return _identity(session, user), token.id, stale


def touch_token(session: Session, token_id: int, now: datetime) -> None:
    """Record that a token was used (at most every few minutes: see :func:`lookup_token`)."""
    session.execute(update(ApiToken).where(ApiToken.id == token_id).values(last_used_at=now))


# --- passwords and browser sessions -----------------------------------------------------------

# Successful argon2 verifications, so that HTTP Basic (checked on every request) costs one
# hash per client and minutes, not per request. Keyed by a digest of the account, its stored
# hash and the password: a new password or a disabled account (checked in the database on
# every request) is never served from here.
_VERIFIED: dict[str, float] = {}
_VERIFIED_LOCK = threading.Lock()
_VERIFIED_TTL = 300.0


def _verify(stored: str | None, password: str, user_id: int) -> bool:
    if stored is None:
        _verify_dummy(password)
        return False
    key = hashlib.sha256(f"{user_id}\0{stored}\0{password}".encode()).hexdigest()
    with _VERIFIED_LOCK:
        seen = _VERIFIED.get(key)
    if seen is not None and time.monotonic() - seen < _VERIFIED_TTL:
        return True
    try:
        _HASHER.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return False
    with _VERIFIED_LOCK:
        if len(_VERIFIED) > 10_000:
            _VERIFIED.clear()
        _VERIFIED[key] = time.monotonic()
    return True


def _verify_dummy(password: str) -> None:
    """Spend the time of a real verification, so an unknown name answers as slowly as a wrong password."""
    with contextlib.suppress(VerificationError, InvalidHashError):
        _HASHER.verify(_DUMMY_HASH, password)


def throttled(session: Session, username: str | None, address: str, now: datetime) -> bool:
    """True when *username* (None: only the address) or *address* had too many failed logins lately.

    Lately: within :data:`FAILURE_WINDOW`.
    """
    since = now - FAILURE_WINDOW
    if username is not None:
        by_name = session.scalar(
            select(func.count()).where(LoginFailure.username == username[:64], LoginFailure.occurred_at >= since)
        )
        if (by_name or 0) >= MAX_FAILURES_PER_ACCOUNT:
            return True
    by_address = session.scalar(
        select(func.count()).where(LoginFailure.address == address[:64], LoginFailure.occurred_at >= since)
    )
    return (by_address or 0) >= MAX_FAILURES_PER_ADDRESS


def record_failure(session: Session, username: str, address: str, how: str, reason: str, now: datetime) -> None:
    """Count and audit a failed login (a wrong password, an unknown name or token, a disabled account)."""
    session.add(LoginFailure(username=username[:64], address=address[:64], occurred_at=now))
    session.flush()
    _audit(
        session,
        Actor(name="anonymous", address=address, kind="http"),
        "login",
        "failure",
        username=username[:64],
        method=how,
        reason=reason,
    )


def authenticate_password(session: Session, username: str, password: str, address: str, *, how: str) -> LoginResult:
    """Check a name and password (login form or HTTP Basic), rate-limited; failures are counted and audited.

    A wrong password, an unknown name, a disabled account and an account without a password
    all give the same result. *how* says which door (``session``, ``basic``) for the audit log.
    """
    now = now_utc()
    name = username.strip().lower()[:64]
    if throttled(session, name, address, now):
        _audit(
            session,
            Actor(name="anonymous", address=address, kind="http"),
            "login",
            "failure",
            username=name,
            method=how,
            reason="rate limited",
        )
        return LoginResult(None, throttled=True)
    user = session.scalars(select(User).where(User.username == name)).one_or_none() if _USERNAME.match(name) else None
    if user is None:
        _verify_dummy(password)
        record_failure(session, name, address, how, "unknown user", now)
        return LoginResult(None)
    if not _verify(user.password_hash, password, user.id):
        record_failure(session, name, address, how, "wrong password", now)
        return LoginResult(None)
    if not user.active:
        record_failure(session, name, address, how, "account disabled", now)
        return LoginResult(None)
    if _HASHER.check_needs_rehash(user.password_hash or ""):
        user.password_hash = _HASHER.hash(password)
    if session.scalar(select(LoginFailure.id).where(LoginFailure.username == name).limit(1)) is not None:
        session.execute(delete(LoginFailure).where(LoginFailure.username == name))
    session.flush()
    return LoginResult(_identity(session, user))


def open_session(session: Session, identity: Identity, address: str) -> tuple[str, str]:
    """Start a browser session after a successful login: the cookie value and the CSRF token. Audited."""
    secret = secrets.token_urlsafe(32)
    csrf = secrets.token_urlsafe(32)
    now = now_utc()
    session.add(
        LoginSession(
            user_id=identity.user_id,
            token_hash=_digest(secret),
            csrf_token=csrf,
            address=address[:64],
            created_at=now,
            last_seen_at=now,
        )
    )
    session.flush()
    _audit(session, identity.actor(address), "login", "success", method="session")
    return secret, csrf


def lookup_session(session: Session, secret: str, now: datetime, idle: timedelta) -> SessionInfo | None:
    """The live session with cookie value *secret*: not ended, not idle longer than *idle*, account active."""
    if not secret or len(secret) > 200:
        return None
    found = session.execute(
        select(LoginSession, User)
        .join(User, User.id == LoginSession.user_id)
        .where(LoginSession.token_hash == _digest(secret))
    ).one_or_none()
    if found is None:
        return None
    row, user = found
    if row.ended_at is not None or not user.active:
        return None
    quiet = now - utc(row.last_seen_at)
    if quiet > idle:
        return None
    stale = quiet > min(timedelta(seconds=60), idle / 4)
    return SessionInfo(row.id, _identity(session, user), row.csrf_token, stale)


def touch_session(session: Session, session_id: int, now: datetime) -> None:
    """Move a session's last activity to *now* (the idle timeout counts from it)."""
    session.execute(update(LoginSession).where(LoginSession.id == session_id).values(last_seen_at=now))


def end_session(session: Session, session_id: int, actor: Actor) -> None:
    """Log out: the session's cookie is refused from now on. Audited."""
    session.execute(update(LoginSession).where(LoginSession.id == session_id).values(ended_at=now_utc()))
    _audit(session, actor, "logout", method="session")


def same_secret(a: str, b: str) -> bool:
    """Constant-time comparison of two secrets (the CSRF token)."""
    return hmac.compare_digest(a.encode("utf-8"), b.encode("utf-8"))


class Authenticator:
    """What a door asks to establish an identity: each call runs its own unit(s) of work on *db*.

    Lookups are reads; a write follows only when something must be recorded (a failure,
    the last use of a token, the activity of a session). None of these wait for the
    deferred indexer: accounts are not written by ingest.
    """

    def __init__(self, db: Database) -> None:
        self.db = db

    def token(self, secret: str, address: str) -> LoginResult:
        """The account of a bearer token; a bad token counts as a failed login of ``(token)``."""
        now = now_utc()
        with self.db.read_session(settle=False) as session:
            found = lookup_token(session, secret, now)
        if found is None:

            def fail(session: Session) -> LoginResult:
                if throttled(session, None, address, now):  # bad tokens name no account: per address only
                    return LoginResult(None, throttled=True)
                record_failure(session, "(token)", address, "bearer", "unknown, expired or revoked token", now)
                return LoginResult(None)

            return self.db.write(fail, settle=False)
        identity, token_id, stale = found
        if stale:
            self.db.write(lambda session: touch_token(session, token_id, now), settle=False)
        return LoginResult(identity)

    def password(self, username: str, password: str, address: str, *, how: str) -> LoginResult:
        """:func:`authenticate_password` in its own unit of work."""
        return self.db.write(
            lambda session: authenticate_password(session, username, password, address, how=how), settle=False
        )

    def session(self, secret: str, idle: timedelta) -> SessionInfo | None:
        """The live browser session of cookie *secret*, its activity recorded."""
        now = now_utc()
        with self.db.read_session(settle=False) as session:
            found = lookup_session(session, secret, now, idle)
        if found is not None and found.stale:
            self.db.write(lambda session: touch_session(session, found.session_id, now), settle=False)
        return found

    def login(self, username: str, password: str, address: str) -> tuple[LoginResult, tuple[str, str] | None]:
        """Check the password and open a browser session, in one unit of work: (result, (cookie, csrf))."""

        def work(session: Session) -> tuple[LoginResult, tuple[str, str] | None]:
            result = authenticate_password(session, username, password, address, how="session")
            if result.identity is None:
                return result, None
            return result, open_session(session, result.identity, address)

        return self.db.write(work, settle=False)

    def logout(self, session_id: int, actor: Actor) -> None:
        """End a browser session."""
        self.db.write(lambda session: end_session(session, session_id, actor), settle=False)
