#!/usr/bin/env python3
"""Check an ndt-pacs evidence bundle offline, with Python's standard library only.

Run it in the unpacked bundle (``python3 -I verify.py`` or ``python3 verify.py DIR``). It checks:

1. every file the manifest lists is present, with its size and SHA-256;
2. no other file was added (beside ``manifest.json``, ``verify.py`` and ``README.txt``);
3. each original DICOM file has the SHA-256 the archive recorded when it was received;
4. each audit entry in ``audit.jsonl`` still hashes to its recorded chain hash, the entries
   are in chain order, and consecutive entries link (each ``prev_hash`` is the hash before it).

Exit 0 when all holds; otherwise 1, with one ``FAILED:`` line per problem naming the file or
entry. Whether the audit entries are the archive's current chain is checked online, against
the anchor in ``manifest.json``: ``pacs audit verify --anchor ID:SHA256``.
"""

from __future__ import annotations

import hashlib
import json
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

BUNDLE_FILES = {"manifest.json", "verify.py", "README.txt"}


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def entry_hash(entry: dict[str, Any]) -> str:
    """The chain hash of one audit entry: SHA-256 of its fields and the previous hash, as canonical JSON."""
    at = datetime.fromisoformat(entry["occurred_at"]).astimezone(timezone.utc)  # noqa: UP017 - any Python 3
    payload = {
        "prev": entry["prev_hash"],
        "at": at.isoformat(timespec="microseconds"),
        "actor": entry["actor"],
        "address": entry["actor_address"],
        "action": entry["action"],
        "outcome": entry["outcome"],
        "study": entry["study_instance_uid"],
        "series": entry["series_instance_uid"],
        "sop": entry["sop_instance_uid"],
        "detail": json.dumps(entry["detail"], sort_keys=True, separators=(",", ":")),
    }
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def problems(root: Path) -> tuple[list[str], int, int]:
    """Everything that does not hold in the bundle at *root*; with the number of files and audit entries checked."""
    found: list[str] = []
    try:
        manifest = json.loads((root / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return [f"manifest.json: cannot be read ({exc})"], 0, 0
    listed = {item["path"]: item for item in manifest.get("files", [])}
    for path, item in sorted(listed.items()):
        target = root / path
        if ".." in Path(path).parts or Path(path).is_absolute():
            found.append(f"{path}: path outside the bundle")
        elif not target.is_file():
            found.append(f"{path}: missing")
        elif target.stat().st_size != item["size"]:
            found.append(f"{path}: size {target.stat().st_size}, manifest says {item['size']}")
        elif _sha256(target) != item["sha256"]:
            found.append(f"{path}: SHA-256 differs from the manifest (the file was changed)")
    for extra in sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()):
        if extra not in listed and extra not in BUNDLE_FILES:
            found.append(f"{extra}: not in the manifest (added to the bundle)")
    for instance in manifest.get("instances", []):
        item = listed.get(instance["path"])
        if item is not None and item["sha256"] != instance["sha256_at_receipt"]:
            found.append(f"{instance['path']}: not the original the archive received (SHA-256 differs)")
    entries = 0
    audit = root / "audit.jsonl"
    if audit.is_file():
        previous: dict[str, Any] | None = None
        for number, line in enumerate(audit.read_text(encoding="utf-8").splitlines(), start=1):
            try:
                entry = json.loads(line)
            except ValueError:
                found.append(f"audit.jsonl line {number}: not JSON")
                continue
            entries += 1
            if entry_hash(entry) != entry["hash"]:
                found.append(f"audit entry {entry['id']}: content does not match its hash (entry edited)")
            if previous is not None:
                if entry["id"] <= previous["id"]:
                    found.append(f"audit entry {entry['id']}: out of chain order")
                elif entry["id"] == previous["id"] + 1 and entry["prev_hash"] != previous["hash"]:
                    found.append(f"audit entry {entry['id']}: does not link to entry {previous['id']}")
            previous = entry
        if entries != manifest.get("audit_entries", entries):
            found.append(f"audit.jsonl: {entries} entries, manifest says {manifest.get('audit_entries')}")
    return found, len(listed), entries


def main(argv: list[str]) -> int:
    """Check the bundle in ``argv[1]`` (default: this script's folder)."""
    root = Path(argv[1]) if len(argv) > 1 else Path(__file__).resolve().parent
    found, files, entries = problems(root)
    for problem in found:
        print(f"FAILED: {problem}")
    if found:
        print(f"evidence NOT intact: {len(found)} problem(s)")
        return 1
    print(f"evidence intact: {files} files, {entries} audit entries")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
