"""DESIGN.md: pacs -> storage <- viewer. Checked by parsing every module's imports."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
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
