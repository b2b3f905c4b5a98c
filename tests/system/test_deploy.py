"""The deployment files: docker-compose.yml is valid, its .env.example is complete, its init step works."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from pynetdicom import AE

from tests.support.servers import RunningServer, free_port, stop_server

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"


def _compose() -> dict[str, Any]:
    return dict(yaml.safe_load(COMPOSE.read_text()))


def test_compose_file_is_valid() -> None:
    tool = shutil.which("docker-compose")
    if tool is None:
        pytest.skip("docker-compose not installed (apt-get install -y docker-compose)")
    result = subprocess.run(
        [tool, "-f", str(COMPOSE), "config", "-q"], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr


def test_every_compose_variable_is_in_env_example() -> None:
    used = set(re.findall(r"\$\{([A-Z0-9_]+)", COMPOSE.read_text()))
    example = {line.split("=", 1)[0] for line in (ROOT / ".env.example").read_text().splitlines() if "=" in line}
    assert used - example == set()


def test_receiver_and_http_services_share_one_image_and_are_scalable() -> None:
    services = _compose()["services"]
    assert {"postgres", "minio", "init", "receiver", "http"} <= set(services)
    for name in ("postgres", "minio", "receiver", "http"):
        assert "healthcheck" in services[name], name
    for name in ("receiver", "http"):
        service = services[name]
        assert service["image"] == services["init"]["image"]
        assert "container_name" not in service  # --scale needs generated names
        assert service["depends_on"]["init"]["condition"] == "service_completed_successfully"
    assert services["receiver"]["command"] == ["serve", "--no-http"]
    assert services["http"]["command"] == ["serve", "--no-dicom"]


def _pacs_shim(directory: Path) -> dict[str, str]:
    """PATH with a `pacs` that runs this checkout (the image's console script, outside a container)."""
    directory.mkdir(parents=True, exist_ok=True)
    shim = directory / "pacs"
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m ndt_pacs "$@"\n')
    shim.chmod(0o755)
    return {"PATH": f"{directory}{os.pathsep}{os.environ['PATH']}", "PYTHONPATH": str(ROOT)}


def _echo(port: int, calling: str) -> bool:
    ae = AE(ae_title=calling)
    ae.add_requested_context("1.2.840.10008.1.1")
    assoc = ae.associate("127.0.0.1", port, ae_title="NDTPACS")
    if not assoc.is_established:
        return False
    assoc.release()
    return True


def test_init_step_is_idempotent_and_lets_the_health_probe_in_under_strict_mode(tmp_path: Path) -> None:
    """Run the compose `init` script (twice, as every `compose up` does), then a strict receiver."""
    entrypoint = _compose()["services"]["init"]["entrypoint"]
    assert entrypoint[:2] == ["sh", "-c"]
    env = {**os.environ, **_pacs_shim(tmp_path / "bin"), "PACS_DATA_DIR": str(tmp_path / "data")}
    for _ in range(2):
        done = subprocess.run(entrypoint, env=env, capture_output=True, text=True, timeout=120, check=False)
        assert done.returncode == 0, done.stderr
    port = free_port()
    env.update({"PACS_STRICT_AE": "true", "PACS_DICOM_PORT": str(port), "TCP_NODELAY": "1"})
    process = subprocess.Popen(
        [sys.executable, "-m", "ndt_pacs", "serve", "--no-http", "--host", "127.0.0.1"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    server = RunningServer(process, tmp_path / "data", port, 0)
    probe = [sys.executable, "-m", "ndt_pacs.healthcheck", "dicom"]
    try:
        deadline = time.monotonic() + 60
        while subprocess.run(probe, env=env, capture_output=True, timeout=60, check=False).returncode != 0:
            assert process.poll() is None, "receiver exited"
            assert time.monotonic() < deadline, "the health probe never got in"
            time.sleep(0.3)
        assert not _echo(port, "STRANGER")  # strict mode is really on: unknown AEs are rejected
    finally:
        assert stop_server(server) == 0


def test_http_is_reached_only_through_the_tls_proxy() -> None:
    """The HTTP service publishes no port; the Caddy proxy does, and the HTTP service trusts its headers."""
    services = _compose()["services"]
    assert "ports" not in services["http"]
    assert services["http"]["environment"]["PACS_TRUST_PROXY"] == "true"
    proxy = services["proxy"]
    assert proxy["image"].startswith("caddy:")
    assert any(str(port).endswith(":443") for port in proxy["ports"])
    caddyfile = (ROOT / "deploy" / "Caddyfile").read_text()
    assert "reverse_proxy http:8042" in caddyfile


def test_security_doc_prints_the_matrix_the_code_enforces() -> None:
    """docs/security.md's role x permission table is the one in storage/records/permissions.py."""
    from storage.records.permissions import matrix_markdown

    doc = (ROOT / "docs" / "security.md").read_text()
    printed = doc.split("<!-- matrix:start -->\n", 1)[1].split("<!-- matrix:end -->", 1)[0]
    assert printed == matrix_markdown(), "regenerate the table with storage.records.permissions.matrix_markdown()"
