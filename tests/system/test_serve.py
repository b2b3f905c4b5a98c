"""`pacs serve` end to end with dcmtk as the independent peer: push a folder, find it, stop cleanly."""

from __future__ import annotations

import hashlib
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.support.factories import make_instance, write_part10
from tests.support.servers import RunningServer, dcmtk, start_server, stop_server

ENV = {**os.environ, "TCP_NODELAY": "1"}


def _run(args: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, env=ENV, timeout=120, check=False)


def _findscu(server: RunningServer, level: str, *keys: str) -> list[str]:
    model = "-P" if level == "PATIENT" else "-S"
    args = [dcmtk("findscu"), "-aec", server.ae_title, model, "-k", f"QueryRetrieveLevel={level}"]
    for key in keys:
        args += ["-k", key]
    result = _run([*args, "127.0.0.1", str(server.dicom_port)])
    assert result.returncode == 0, result.stderr
    return [line for line in result.stderr.splitlines() + result.stdout.splitlines() if "Find Response:" in line]


def test_push_a_folder_find_it_at_every_level_and_stop(tmp_path: Path) -> None:
    folder = tmp_path / "device-export"
    folder.mkdir()
    study = make_instance(PatientID="SN-777", EthnicGroup="Inconel 718")
    sent = []
    for n in range(12):
        ds = make_instance(
            PatientID="SN-777",
            PatientName="Turbine^Disc",
            EthnicGroup="Inconel 718",
            StudyInstanceUID=study.StudyInstanceUID,
            SeriesInstanceUID=study.SeriesInstanceUID if n < 8 else "1.2.826.0.1.3680043.10.1.77",
            InstanceNumber=n + 1,
        )
        sent.append(write_part10(ds, folder / f"img{n:02d}.dcm"))

    server = start_server(tmp_path / "pacs-data")
    try:
        assert (tmp_path / "pacs-data" / "index.sqlite").exists(), "embedded index created on first start"
        health = httpx.get(f"{server.http}/healthz").json()
        assert health == {
            "status": "ok",
            "version": health["version"],
            "database": "up",
            "object_store": "up",
            "indexer": "running",  # deferred indexing, the default
            "intake": {"waiting": 0, "set_aside": 0},
        }
        # Without credentials only /healthz and the login page answer; the log says how to make an admin.
        for path in ("/", "/ui/app.js", "/api/components", "/dicom-web/studies", "/wado", "/openapi.json", "/api/me"):
            assert httpx.get(f"{server.http}{path}").status_code == 401, path
        assert httpx.get(f"{server.http}/login").status_code == 200
        assert server.log().count("no admin account yet: create one with `pacs user add") == 1

        assert _run([dcmtk("echoscu"), "-aec", "NDTPACS", "127.0.0.1", str(server.dicom_port)]).returncode == 0
        push = _run(
            [dcmtk("storescu"), "-aec", "NDTPACS", "+sd", "+r", "127.0.0.1", str(server.dicom_port), str(folder)]
        )
        assert push.returncode == 0, push.stderr

        assert len(_findscu(server, "PATIENT", "PatientID=SN-777", "PatientName")) == 1
        assert len(_findscu(server, "STUDY", "EthnicGroup=Inconel*", "StudyInstanceUID")) == 1
        assert len(_findscu(server, "SERIES", f"StudyInstanceUID={study.StudyInstanceUID}", "SeriesInstanceUID")) == 2
        assert (
            len(
                _findscu(
                    server,
                    "IMAGE",
                    f"StudyInstanceUID={study.StudyInstanceUID}",
                    f"SeriesInstanceUID={study.SeriesInstanceUID}",
                    "SOPInstanceUID",
                )
            )
            == 8
        )
        assert _findscu(server, "STUDY", "PatientID=NO-SUCH-PART", "StudyInstanceUID") == []
    finally:
        assert stop_server(server, signal.SIGTERM) == 0, server.log()

    # Every object on disk is byte-identical to its index checksum; the audit chain is intact.
    db = sqlite3.connect(tmp_path / "pacs-data" / "index.sqlite")
    rows = db.execute("SELECT object_key, sha256 FROM instance_versions").fetchall()
    assert len(rows) == 12
    for key, sha in rows:
        assert hashlib.sha256((tmp_path / "pacs-data" / "objects" / key).read_bytes()).hexdigest() == sha
    actions = db.execute("SELECT action, outcome FROM audit_events ORDER BY id").fetchall()
    assert actions.count(("store", "success")) == 12
    assert actions.count(("find", "success")) == 5
    db.close()
    verify = _run([sys.executable, "-m", "ndt_pacs", "audit", "verify", "--data-dir", str(tmp_path / "pacs-data")])
    assert verify.returncode == 0, verify.stdout
    fixity = _run([sys.executable, "-m", "ndt_pacs", "verify", "--data-dir", str(tmp_path / "pacs-data")])
    assert "12 objects checked, 0 problems" in fixity.stdout


def test_sigterm_during_a_transfer_loses_nothing_acknowledged(tmp_path: Path) -> None:
    folder = tmp_path / "big"
    folder.mkdir()
    for n in range(40):
        write_part10(make_instance(rows=512, columns=512, PatientID="SN-BIG"), folder / f"{n}.dcm")
    server = start_server(tmp_path / "pacs-data")
    push = subprocess.Popen(
        [dcmtk("storescu"), "-v", "-aec", "NDTPACS", "+sd", "127.0.0.1", str(server.dicom_port), str(folder)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=ENV,
    )
    out = ""
    assert push.stdout is not None
    for line in push.stdout:  # stop the server once a few instances were acknowledged
        out += line
        if out.count("Received Store Response (Success)") >= 3:
            break
    assert stop_server(server, signal.SIGTERM) == 0, server.log()
    out += push.communicate(timeout=60)[0]
    acknowledged = out.count("Received Store Response (Success)")
    assert acknowledged >= 3
    db = sqlite3.connect(tmp_path / "pacs-data" / "index.sqlite")
    indexed = db.execute("SELECT count(*) FROM instances").fetchone()[0]
    db.close()
    # The listener let the open association finish: everything acknowledged is indexed.
    assert indexed >= acknowledged
    spool = tmp_path / "pacs-data" / "spool"
    assert not [p for p in spool.iterdir() if p.is_file()] if spool.exists() else True


@pytest.mark.parametrize("flag", ["--help"])
def test_cli_help_lists_the_contract(flag: str) -> None:
    result = _run([sys.executable, "-m", "ndt_pacs", "serve", flag])
    for option in ("--data-dir", "--host", "--dicom-port", "--http-port", "--ae-title"):
        assert option in result.stdout
