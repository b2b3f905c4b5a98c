"""``PACS_DICOM_WORKERS``: several receiver processes share the DICOM port and lose nothing."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from pydicom.uid import generate_uid
from sqlalchemy import func, select

from storage.factory import open_archive
from storage.index.models import Instance, Series, Study
from tests.support.factories import make_instance, write_part10
from tests.support.servers import dcmtk, make_settings, start_server, stop_server

ASSOCIATIONS, PER_ASSOCIATION = 8, 15


def _listening_pids(port: int) -> set[str]:
    if shutil.which("ss") is None:
        pytest.skip("ss (iproute2) is not installed")
    out = subprocess.run(["ss", "-Hltnp", f"sport = :{port}"], capture_output=True, text=True, check=True).stdout
    return set(re.findall(r"pid=(\d+)", out))


def test_two_receivers_share_the_port_and_store_everything_once(tmp_path: Path) -> None:
    study = generate_uid()
    folders = []
    for n in range(ASSOCIATIONS):  # one inspection, a series per association, all arriving at once
        folder = tmp_path / f"device-{n}"
        folder.mkdir()
        series = generate_uid()
        for m in range(PER_ASSOCIATION):
            ds = make_instance(StudyInstanceUID=study, SeriesInstanceUID=series, PatientID="SN-WORKERS")
            write_part10(ds, folder / f"{m}.dcm")
        folders.append(folder)
    server = start_server(tmp_path / "data", {"PACS_DICOM_WORKERS": "2"})
    try:
        deadline = time.monotonic() + 60  # the second receiver starts in a fresh interpreter
        while len(_listening_pids(server.dicom_port)) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert len(_listening_pids(server.dicom_port)) == 2, server.log()
        senders = [
            subprocess.Popen(
                [dcmtk("storescu"), "-aec", "NDTPACS", "+sd", "127.0.0.1", str(server.dicom_port), str(folder)],
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            for folder in folders
        ]
        for sender in senders:
            output, _ = sender.communicate(timeout=120)
            assert sender.returncode == 0, output
    finally:
        assert stop_server(server) == 0, server.log()
    assert _listening_pids(server.dicom_port) == set(), "a worker outlived the server"
    archive = open_archive(make_settings(server.data_dir))
    with archive.db.read_session() as session:
        assert session.scalar(select(func.count()).select_from(Instance)) == ASSOCIATIONS * PER_ASSOCIATION
        counts = session.execute(select(Study.number_of_series, Study.number_of_instances)).one()
        assert tuple(counts) == (ASSOCIATIONS, ASSOCIATIONS * PER_ASSOCIATION)
        per_series = session.scalars(select(Series.number_of_instances)).all()
        assert per_series == [PER_ASSOCIATION] * ASSOCIATIONS
    assert archive.verify_audit().ok
    archive.db.dispose()


def test_workers_need_a_fixed_port() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "ndt_pacs", "serve", "--dicom-port", "0", "--dicom-workers", "2"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode != 0
    assert "needs a fixed DICOM port" in result.stderr
