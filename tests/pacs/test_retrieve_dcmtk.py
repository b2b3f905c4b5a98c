"""dcmtk getscu and movescu against `pacs serve` (movescu fills a dcmtk storescp registered as a peer)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from pydicom import dcmread

from tests.support.factories import make_instance, write_part10
from tests.support.retrieve_helpers import dataset_bytes
from tests.support.servers import RunningServer, dcmtk, free_port

pytestmark = pytest.mark.dcmtk
ENV = {**os.environ, "TCP_NODELAY": "1"}


def _run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), capture_output=True, text=True, timeout=timeout, env=ENV)


@pytest.fixture
def study(pacs_server: RunningServer, tmp_path: Path) -> tuple[str, dict[str, Path]]:
    """Three instances of one study, pushed with dcmtk storescu; returns (study UID, originals by SOP UID)."""
    first = make_instance()
    originals = {}
    for n in range(3):
        ds = make_instance(
            StudyInstanceUID=first.StudyInstanceUID,
            SeriesInstanceUID=first.SeriesInstanceUID,
            PatientID=first.PatientID,
            InstanceNumber=n + 1,
        )
        originals[str(ds.SOPInstanceUID)] = write_part10(ds, tmp_path / f"src-{n}.dcm")
    pushed = _run(
        dcmtk("storescu"), "-aec", "NDTPACS", "127.0.0.1", str(pacs_server.dicom_port), *map(str, originals.values())
    )
    assert pushed.returncode == 0, pushed.stderr
    return str(first.StudyInstanceUID), originals


def _wait_listening(port: int, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"nothing listens on {port}")


def _received(directory: Path) -> dict[str, Path]:
    return {str(dcmread(p, stop_before_pixels=True).SOPInstanceUID): p for p in directory.iterdir() if p.is_file()}


def test_getscu_study(pacs_server: RunningServer, study: tuple[str, dict[str, Path]], tmp_path: Path):
    study_uid, originals = study
    out = tmp_path / "got"
    out.mkdir()
    got = _run(
        dcmtk("getscu"), "-S", "-aet", "GETSCU", "-aec", "NDTPACS",
        "-k", "QueryRetrieveLevel=STUDY", "-k", f"StudyInstanceUID={study_uid}",
        "-od", str(out), "127.0.0.1", str(pacs_server.dicom_port),
    )  # fmt: skip
    assert got.returncode == 0, got.stderr + got.stdout
    received = _received(out)
    assert set(received) == set(originals)
    for uid, path in received.items():
        assert dataset_bytes(path) == dataset_bytes(originals[uid])  # as stored, not re-encoded


def test_movescu_fills_a_second_archive(pacs_server: RunningServer, study: tuple[str, dict[str, Path]], tmp_path: Path):
    study_uid, originals = study
    port = free_port()
    added = _run(
        sys.executable, "-m", "ndt_pacs", "peer", "add", "STORESCP", "--host", "127.0.0.1", "--port", str(port),
        "--allow", "move", "--data-dir", str(pacs_server.data_dir),
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    inbox = tmp_path / "second-archive"
    inbox.mkdir()
    storescp = subprocess.Popen(
        [dcmtk("storescp"), "-aet", "STORESCP", "-od", str(inbox), str(port)],
        env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        _wait_listening(port)
        moved = _run(
            dcmtk("movescu"), "-S", "-aet", "MOVESCU", "-aec", "NDTPACS", "-aem", "STORESCP",
            "-k", "QueryRetrieveLevel=STUDY", "-k", f"StudyInstanceUID={study_uid}",
            "127.0.0.1", str(pacs_server.dicom_port),
        )  # fmt: skip
        assert moved.returncode == 0, moved.stderr + moved.stdout
        received = _received(inbox)
    finally:
        storescp.terminate()
        storescp.wait(10)
    assert set(received) == set(originals)
    for uid, path in received.items():
        assert dataset_bytes(path) == dataset_bytes(originals[uid])

    unknown = _run(
        dcmtk("movescu"), "-v", "-S", "-aet", "MOVESCU", "-aec", "NDTPACS", "-aem", "NOWHERE",
        "-k", "QueryRetrieveLevel=STUDY", "-k", f"StudyInstanceUID={study_uid}",
        "127.0.0.1", str(pacs_server.dicom_port),
    )  # fmt: skip
    assert "Refused: MoveDestinationUnknown" in unknown.stdout + unknown.stderr


def test_strict_server_accepts_only_registered_peers(tmp_path: Path):
    """`PACS_STRICT_AE=true pacs serve`: dcmtk echoscu is rejected until `pacs peer add` registers it."""
    from tests.support.servers import start_server, stop_server

    server = start_server(tmp_path / "strict", {"PACS_STRICT_AE": "true"})
    try:
        echo = [dcmtk("echoscu"), "-aet", "DEVICE1", "-aec", "NDTPACS", "127.0.0.1", str(server.dicom_port)]
        rejected = _run(*echo)
        assert rejected.returncode != 0
        assert "Calling AE Title Not Recognized" in rejected.stderr + rejected.stdout
        added = _run(
            sys.executable, "-m", "ndt_pacs", "peer", "add", "DEVICE1", "--host", "127.0.0.1", "--port", "104",
            "--data-dir", str(server.data_dir),
        )  # fmt: skip
        assert added.returncode == 0, added.stderr
        accepted = _run(*echo)
        assert accepted.returncode == 0, accepted.stderr
    finally:
        stop_server(server)
