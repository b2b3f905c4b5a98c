"""Who may do what: roles, the permissions they grant, and the NDT qualification rules.

Decided here, once, for every door (HTTP, DICOM, CLI): a door establishes the identity
and asks. Roles follow ndt-workflow §3.2; qualifications follow ISO 9712 / NAS 410 /
SNT-TC-1A (§2.5): Level 1 views and annotates but never records a disposition, Level 2
evaluates and signs for the methods it holds, Level 3 approves. A certificate outside its
validity or a near-vision test older than 12 months counts as absent.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta

# Every permission, and what it allows. HTTP routes declare one of these (viewer.auth.require).
PERMISSIONS: dict[str, str] = {
    "public": "no credentials needed: the login page and the files it uses, logging in",
    "session": "any signed-in account: who am I, log out, the API description",
    "viewer:open": "load the web viewer's pages and scripts",
    "studies:read": "search and read records: REST API, QIDO-RS, WADO-RS / WADO-URI retrieve, metadata, renderings",
    "studies:write": "store instances (STOW-RS)",
    "images:read": "read pixel values for display (the viewer's raw frames) and the annotations kept on images",
    "annotations:write": "create and withdraw annotations (measurements kept on an image)",
    "evaluations:write": "record a disposition and sign it as evaluator (needs a valid Level 2 or 3 qualification)",
    "evaluations:approve": "approve or return an evaluation (needs a valid Level 3 qualification)",
    "audit:read": "read and export the audit log",
    "quality:read": "quality dashboards and reports",
    "accounts:manage": "create, change and disable accounts and tokens",
    "peers:manage": "add and remove known DICOM peers",
}

ROLES: dict[str, str] = {
    "admin": "accounts, peers and settings; never edits records",
    "inspector": "views, measures and annotates; evaluates and approves as its NDT qualifications allow",
    "auditor": "reads everything, including the audit log; writes nothing",
    "quality": "dashboards and reports; reads records",
    "device": "service account of a device or script: stores instances and reads what it needs",
}

# Role x permission. Permissions marked here as qualified are granted only with a valid
# qualification of the required level (see QUALIFIED).
ROLE_PERMISSIONS: dict[str, frozenset[str]] = {
    "admin": frozenset({"session", "viewer:open", "accounts:manage", "peers:manage", "audit:read"}),
    "inspector": frozenset(
        {
            "session",
            "viewer:open",
            "studies:read",
            "images:read",
            "annotations:write",
            "evaluations:write",
            "evaluations:approve",
        }
    ),
    "auditor": frozenset({"session", "viewer:open", "studies:read", "images:read", "audit:read", "quality:read"}),
    "quality": frozenset({"session", "viewer:open", "studies:read", "images:read", "quality:read"}),
    "device": frozenset({"session", "studies:read", "studies:write"}),
}

# Permissions that a role allows only with a valid qualification of at least this level.
QUALIFIED: dict[str, int] = {"evaluations:write": 2, "evaluations:approve": 3}
# What the qualified permissions are called in explanations.
_ACT = {"evaluations:write": "record a disposition", "evaluations:approve": "approve an evaluation"}

METHODS: tuple[str, ...] = ("RT", "DR", "CR", "CT", "UT", "PAUT", "TOFD", "ET", "MT", "PT", "VT", "TT", "LT", "AE")
VISION_TEST_VALIDITY = timedelta(days=365)  # near-vision acuity is checked annually (ISO 9712)


@dataclass(frozen=True)
class Certificate:
    """One NDT qualification, detached from the database."""

    method: str
    level: int
    certificate: str
    issuer: str
    valid_from: date | None
    valid_until: date
    vision_test: date | None

    def problem(self, on: date) -> str | None:
        """Why this certificate does not count on *on*; None when it is valid."""
        name = f"{self.method} Level {self.level}"
        if self.valid_from is not None and on < self.valid_from:
            return f"{name} certificate valid only from {self.valid_from.isoformat()}"
        if on > self.valid_until:
            return f"{name} certificate expired {self.valid_until.isoformat()}"
        if self.vision_test is None:
            return f"{name}: no vision test recorded"
        if on > self.vision_test + VISION_TEST_VALIDITY:
            return f"{name}: vision test of {self.vision_test.isoformat()} is older than 12 months"
        return None


@dataclass(frozen=True)
class Decision:
    """Allowed or not, and why not."""

    allowed: bool
    reason: str | None = None


def role_permissions(role: str) -> frozenset[str]:
    """What *role* may do at most (qualified permissions still need a qualification)."""
    return ROLE_PERMISSIONS.get(role, frozenset())


def decide(
    role: str, permission: str, certificates: Iterable[Certificate], on: date, *, method: str | None = None
) -> Decision:
    """May an account with *role* and *certificates* use *permission* on day *on*?

    For a qualified permission without *method*: any method held at the required level;
    with *method*: that method. The reason names the closest thing that fails.
    """
    if permission not in PERMISSIONS:
        raise ValueError(f"unknown permission {permission!r}")
    if permission == "public":
        return Decision(True)
    if permission not in role_permissions(role):
        return Decision(False, f"the {role} role may not {PERMISSIONS[permission]}")
    needed = QUALIFIED.get(permission)
    if needed is None:
        return Decision(True)
    certs = [c for c in certificates if method is None or c.method == method.upper()]
    what = f"{method.upper()} " if method else ""
    if not certs:
        return Decision(False, f"no {what}qualification: Level {needed} needed to {_ACT[permission]}")
    valid = [c for c in certs if c.problem(on) is None]
    if any(c.level >= needed for c in valid):
        return Decision(True)
    # Explain with the highest-level certificate that would have been enough, else the highest held.
    sufficient = sorted((c for c in certs if c.level >= needed), key=lambda c: -c.level)
    if sufficient:
        return Decision(False, sufficient[0].problem(on))
    best = max(certs, key=lambda c: c.level)
    return Decision(False, f"{best.method} Level {best.level} may not {_ACT[permission]} (Level {needed} needed)")


def effective(role: str, certificates: Iterable[Certificate], on: date) -> dict[str, Decision]:
    """Every permission (but ``public``) with the decision for this account on *on*."""
    certs = list(certificates)
    return {p: decide(role, p, certs, on) for p in PERMISSIONS if p != "public"}


def by_method(role: str, certificates: Iterable[Certificate], on: date) -> dict[str, dict[str, Decision]]:
    """For every NDT method (and any other one held): may the account evaluate, may it approve, and why not."""
    certs = list(certificates)
    methods = list(METHODS) + sorted({c.method for c in certs} - set(METHODS))
    return {
        method: {permission: decide(role, permission, certs, on, method=method) for permission in QUALIFIED}
        for method in methods
    }


def matrix_markdown() -> str:
    """The role x permission matrix as a Markdown table (docs/security.md prints exactly this)."""
    roles = list(ROLES)
    lines = ["| permission | allows | " + " | ".join(roles) + " |", "|---|---|" + "---|" * len(roles)]
    for permission, allows in PERMISSIONS.items():
        if permission == "public":
            cells = ["✓"] * len(roles)
        else:
            cells = []
            for role in roles:
                if permission not in ROLE_PERMISSIONS[role]:
                    cells.append("")
                elif permission in QUALIFIED:
                    cells.append(f"Level {QUALIFIED[permission]}+ valid")
                else:
                    cells.append("✓")
        lines.append(f"| `{permission}` | {allows} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
