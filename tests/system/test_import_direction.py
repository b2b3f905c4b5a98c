"""DESIGN.md: pacs -> storage <- viewer. Checked by parsing every module's imports."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FORBIDDEN = {
    "storage": {"pynetdicom", "fastapi", "starlette", "uvicorn", "pacs", "viewer", "ndt_pacs"},
    "pacs": {"viewer", "fastapi", "starlette", "ndt_pacs"},
    "viewer": {"pacs", "pynetdicom", "ndt_pacs"},
}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_respects_dependency_direction(package: str) -> None:
    offenders = {
        str(path.relative_to(ROOT)): sorted(_imports(path) & FORBIDDEN[package])
        for path in (ROOT / package).rglob("*.py")
        if _imports(path) & FORBIDDEN[package]
    }
    assert offenders == {}, f"{package}/ imports forbidden layers: {offenders}"


def test_checker_sees_a_violation(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("import pynetdicom\nfrom viewer.app import create_app\n")
    assert _imports(bad) & FORBIDDEN["storage"] == {"pynetdicom", "viewer"}


# storage/ is divided into rooms (docs/architecture.md); a room may use the rooms below it only.
ROOMS = ["factory", "records", "archive", "ingest", "audit", "index", "objects", "dicom"]


def _room(module: str) -> int | None:
    parts = module.split(".")
    if len(parts) < 2 or parts[0] != "storage" or parts[1] not in ROOMS:
        return None
    return ROOMS.index(parts[1])


def _storage_imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {name for name in names if name.startswith("storage.")}


def test_storage_rooms_only_look_down() -> None:
    backward: dict[str, list[str]] = {}
    for path in (ROOT / "storage").rglob("*.py"):
        module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        own = _room(module)
        if own is None:
            continue
        above = sorted(name for name in _storage_imports(path) if (room := _room(name)) is not None and room < own)
        if above:
            backward[module] = above
    assert backward == {}, f"storage rooms importing rooms above them: {backward}"


def test_room_check_sees_a_backward_arrow() -> None:
    assert _room("storage.dicom.files") > _room("storage.archive")  # type: ignore[operator]
    assert _room("storage.settings") is None
