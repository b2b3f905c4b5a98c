"""The configured vocabularies of evaluations: indication types, acceptance standards, release policy.

Defaults: the ISO 6520-1 imperfection groups plus the DICONDE IndicationType terms (ASTM E2339;
IndicationType (0014,201A) is CS, so codes are at most 16 upper-case characters, PS3.5 6.2),
and the usual weld acceptance standards with their levels. Both lists can be replaced by a JSON
file of ``[{"code", "meaning"}]`` (``PACS_INDICATION_TYPES_FILE``, ``PACS_ACCEPTANCE_STANDARDS_FILE``).
``PACS_RELEASE_SIGNATURES`` is 2 (evaluated + approved, the four-eyes release, default) or 1.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

_CS = re.compile(r"^[A-Z0-9_ ]{1,16}$")

DEFAULT_INDICATION_TYPES: tuple[tuple[str, str], ...] = (
    ("CRACK", "Crack (ISO 6520-1 group 1)"),
    ("CAVITY", "Cavity (ISO 6520-1 group 2)"),
    ("POROSITY", "Porosity, gas pore (ISO 6520-1 group 2)"),
    ("INCLUSION", "Solid inclusion (ISO 6520-1 group 3)"),
    ("LACK_OF_FUSION", "Lack of fusion (ISO 6520-1 group 4, 401)"),
    ("LACK_OF_PEN", "Lack of penetration (ISO 6520-1 group 4, 402)"),
    ("IMPERFECT_SHAPE", "Imperfect shape and dimension (ISO 6520-1 group 5)"),
    ("OTHER", "Miscellaneous imperfection (ISO 6520-1 group 6)"),
    ("VOID", "Void (DICONDE)"),
)

DEFAULT_STANDARDS: tuple[tuple[str, str], ...] = (
    ("ISO10675-1:L1", "ISO 10675-1 acceptance level 1"),
    ("ISO10675-1:L2", "ISO 10675-1 acceptance level 2"),
    ("ISO10675-1:L3", "ISO 10675-1 acceptance level 3"),
    ("ISO5817:B", "ISO 5817 quality level B"),
    ("ISO5817:C", "ISO 5817 quality level C"),
    ("ISO5817:D", "ISO 5817 quality level D"),
    ("ASME-V", "ASME BPVC Section V"),
    ("ASME-VIII", "ASME BPVC Section VIII"),
    ("ASTM-E1742", "ASTM E1742"),
    ("API-1104", "API 1104"),
    ("AWS-D1.1", "AWS D1.1"),
)


class EvaluationSettings(BaseSettings):
    """``PACS_`` settings of the evaluation records."""

    model_config = SettingsConfigDict(env_prefix="PACS_", extra="ignore")

    indication_types_file: Path | None = Field(default=None, description="JSON list of {code, meaning}")
    acceptance_standards_file: Path | None = Field(default=None, description="JSON list of {code, meaning}")
    release_signatures: int = Field(default=2, ge=1, le=2, description="2: evaluated + approved; 1: evaluated")


@dataclass(frozen=True)
class Term:
    """One entry of a vocabulary."""

    code: str
    meaning: str


@dataclass(frozen=True)
class Policy:
    """What evaluations may say and how many signatures release one."""

    indication_types: tuple[Term, ...]
    standards: tuple[Term, ...]
    release_signatures: int = 2

    def indication_type(self, code: str) -> Term | None:
        """The type *code*, or None when it is not in the vocabulary."""
        return next((t for t in self.indication_types if t.code == code), None)

    def standard(self, code: str) -> Term | None:
        """The acceptance standard *code*, or None when it is not configured."""
        return next((t for t in self.standards if t.code == code), None)


def _load(path: Path, *, cs: bool) -> tuple[Term, ...]:
    entries = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(entries, list) or not entries:
        raise ValueError(f"{path}: expected a non-empty JSON list of {{code, meaning}}")
    terms = []
    for entry in entries:
        code, meaning = (entry or {}).get("code"), (entry or {}).get("meaning")
        if not isinstance(code, str) or not isinstance(meaning, str) or not code or len(code) > 64:
            raise ValueError(f"{path}: each entry needs a text code (1..64) and meaning")
        if cs and not _CS.match(code):
            raise ValueError(f"{path}: indication type {code!r} is not a DICOM CS value (A-Z, 0-9, _, space; 16)")
        terms.append(Term(code, meaning))
    return tuple(terms)


def policy_from(settings: EvaluationSettings) -> Policy:
    """The policy the settings describe (defaults where no file is given)."""
    types = (
        _load(settings.indication_types_file, cs=True)
        if settings.indication_types_file
        else tuple(Term(c, m) for c, m in DEFAULT_INDICATION_TYPES)
    )
    standards = (
        _load(settings.acceptance_standards_file, cs=False)
        if settings.acceptance_standards_file
        else tuple(Term(c, m) for c, m in DEFAULT_STANDARDS)
    )
    return Policy(types, standards, settings.release_signatures)


@lru_cache
def default_policy() -> Policy:
    """The policy of this process's environment, read once."""
    return policy_from(EvaluationSettings())
