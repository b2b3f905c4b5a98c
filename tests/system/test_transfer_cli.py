"""`pacs import`, `pacs export` and `pacs push` as a user runs them: real processes, real peers."""

from __future__ import annotations

import getpass
import io
import json
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.fileset import FileSet
from pynetdicom.dsutils import split_dataset
from sqlalchemy import select

from storage.factory import open_archive
from storage.index.models import AuditEvent
from tests.support.servers import dcmtk, free_port, make_settings, s3_settings_for

ROOT = Path(__file__).resolve().parents[2]
# Files the archive stores, one per transfer syntax family, and one it refuses (file meta names another UID).
GOOD = ["CT_small.dcm", "MR_small.dcm", "JPEG-lossy.dcm", "SC_rgb_rle.dcm", "US1_J2KR.dcm", "emri_small.dcm"]
REFUSED_FILE = "rtdose.dcm"
ORTHANC = "/usr/sbin/Orthanc"


def pacs(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run the `pacs` command line of this checkout."""
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    return subprocess.run(
        ["python3", "-m", "ndt_pacs", *args], capture_output=True, text=True, env=full_env, timeout=300, check=False
    )


def _counts(stdout: str) -> dict[str, int]:
    counts = {}
    for line in stdout.splitlines():
        if line.startswith("  "):
            label, _, number = line.strip().rpartition(" ")
            counts[label.strip()] = int(number)
    return counts


def _folder(tmp_path: Path) -> Path:
    """A folder as a user has one: DICOM files in subfolders, a text file, a truncated copy."""
    folder = tmp_path / "incoming"
    (folder / "day1").mkdir(parents=True)
    (folder / "day2" / "deep").mkdir(parents=True)
    for i, name in enumerate([*GOOD, REFUSED_FILE]):
        target = folder / ("day1" if i % 2 else "day2/deep") / name
        shutil.copyfile(str(get_testdata_file(name)), target)
    (folder / "notes.txt").write_text("inspection notes, not DICOM\n")
    data = Path(str(get_testdata_file("CT_small.dcm"))).read_bytes()
    (folder / "day1" / "cut.dcm").write_bytes(data[: len(data) // 2])
    return folder


@pytest.mark.parametrize("backend", ["embedded", "postgres-s3"])
def test_import_counts_refusals_byte_exact_and_rerun_safe(
    tmp_path: Path, backend: str, request: pytest.FixtureRequest
) -> None:
    folder = _folder(tmp_path)
    data_dir = tmp_path / "data"
    env: dict[str, str] = {}
    settings = make_settings(data_dir)
    if backend == "postgres-s3":
        url = str(request.getfixturevalue("postgres_url"))
        s3 = request.getfixturevalue("s3_env")
        env = {**s3, "PACS_DATABASE_URL": url}
        settings = s3_settings_for(data_dir, s3, url)
        assert pacs("db", "upgrade", "--data-dir", str(data_dir), env=env).returncode == 0

    dry = pacs("import", "--data-dir", str(data_dir), "--dry-run", str(folder), env=env)
    assert dry.returncode == 1, dry.stderr
    assert _counts(dry.stdout)["would be stored"] == len(GOOD)

    first = pacs("import", "--data-dir", str(data_dir), str(folder), env=env)
    assert first.returncode == 1, first.stderr
    counts = _counts(first.stdout)
    assert counts == {
        "stored": len(GOOD),
        "duplicates": 0,
        "new versions": 0,
        "refused": 2,
        "skipped (not DICOM)": 1,
        "skipped (DICOMDIR)": 0,
    }
    refused = [line for line in first.stdout.splitlines() if line.startswith("REFUSED")]
    assert any(REFUSED_FILE in line and "(0002,0003)" in line for line in refused)
    assert any("cut.dcm" in line and "truncated" in line for line in refused)
    assert "Traceback" not in first.stderr
    assert "alembic" not in first.stderr

    archive = open_archive(settings)
    try:
        for name in GOOD:
            original = Path(str(get_testdata_file(name))).read_bytes()
            header = pydicom.dcmread(str(get_testdata_file(name)), stop_before_pixels=True)
            [stored] = archive.instances(str(header.StudyInstanceUID), None, str(header.SOPInstanceUID))
            assert b"".join(archive.read_instance(stored)) == original
    finally:
        archive.db.dispose()

    again = pacs("import", "--data-dir", str(data_dir), str(folder), env=env)
    assert again.returncode == 1
    counts = _counts(again.stdout)
    assert counts["stored"] == 0
    assert counts["new versions"] == 0
    assert counts["duplicates"] == len(GOOD)


def test_import_of_a_missing_path_is_one_clear_line(tmp_path: Path) -> None:
    result = pacs("import", "--data-dir", str(tmp_path / "data"), str(tmp_path / "nowhere"))
    assert result.returncode == 2
    assert result.stderr.strip() == f"error: no such file or directory: {tmp_path / 'nowhere'}"
    assert not (tmp_path / "data").exists()


@pytest.fixture
def demo_archive(tmp_path: Path) -> tuple[Path, Path]:
    """A data directory holding the demo data set (DICONDE classes included), loaded with `pacs import`."""
    files, data_dir = tmp_path / "demo", tmp_path / "data"
    assert pacs("demo", "--out", str(files), "--count", "2", "--scale", "0.1").returncode == 0
    loaded = pacs("import", "--data-dir", str(data_dir), str(files))
    assert loaded.returncode == 0, loaded.stdout + loaded.stderr
    return files, data_dir


def _by_sop(folder: Path) -> dict[str, bytes]:
    out = {}
    for path in folder.rglob("*"):
        if path.is_file() and path.name != "DICOMDIR":
            out[str(pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID)] = path.read_bytes()
    return out


def test_export_dicomdir_is_a_file_set_dcmtk_accepts_with_the_originals(demo_archive: tuple[Path, Path]) -> None:
    files, data_dir = demo_archive
    originals = _by_sop(files)
    serial = str(pydicom.dcmread(next(files.glob("DX_*")), stop_before_pixels=True).PatientID)
    mine = {sop: data for sop, data in originals.items() if pydicom.dcmread(io.BytesIO(data)).PatientID == serial}
    out = data_dir.parent / "to-customer"

    result = pacs("export", "--data-dir", str(data_dir), "--serial", serial, str(out), "--dicomdir")
    assert result.returncode == 0, result.stderr
    assert f"{len(mine)} instances" in result.stdout

    written = [p for p in out.rglob("*") if p.is_file()]
    check = subprocess.run([dcmtk("dcmftest"), *map(str, written)], capture_output=True, text=True, check=False)
    assert check.returncode == 0, check.stdout
    assert check.stdout.count("yes:") == len(mine) + 1
    fileset = FileSet(out / "DICOMDIR")
    assert {str(i.SOPInstanceUID) for i in fileset} == set(mine)
    for instance in fileset:
        assert Path(instance.path).read_bytes() == mine[str(instance.SOPInstanceUID)]  # byte-exact

    archive = open_archive(make_settings(data_dir))
    try:
        with archive.db.read_session() as session:
            events = session.execute(
                select(AuditEvent.actor, AuditEvent.detail).where(AuditEvent.action == "export")
            ).all()
        assert events
        assert {actor for actor, _ in events} == {f"cli:{getpass.getuser()}"}
        assert all(json.loads(detail)["serial"] == serial for _, detail in events)
    finally:
        archive.db.dispose()


def test_export_originals_by_study_and_the_clear_refusals(demo_archive: tuple[Path, Path]) -> None:
    files, data_dir = demo_archive
    header = pydicom.dcmread(next(files.glob("CT_*")), stop_before_pixels=True)
    study = str(header.StudyInstanceUID)
    out = data_dir.parent / "study"
    result = pacs("export", "--data-dir", str(data_dir), "--study", study, str(out))
    assert result.returncode == 0, result.stderr
    exported = _by_sop(out)
    originals = _by_sop(files)
    assert exported
    assert all(originals[sop] == data for sop, data in exported.items())
    assert {p.parent.parent.name for p in out.rglob("*.dcm")} == {study}

    again = pacs("export", "--data-dir", str(data_dir), "--study", study, str(out))
    assert again.returncode == 1
    assert again.stderr.strip() == f"error: {out} is not an empty directory"
    unknown = pacs("export", "--data-dir", str(data_dir), "--serial", "NO-SUCH", str(data_dir.parent / "none"))
    assert unknown.returncode == 1
    assert "no stored inspections for serial 'NO-SUCH'" in unknown.stderr
    assert not (data_dir.parent / "none").exists()
    neither = pacs("export", "--data-dir", str(data_dir), str(out))
    assert neither.returncode == 2
    assert "one of the arguments --serial --study is required" in neither.stderr


def _dataset_bytes(path: Path) -> bytes:
    """The data set after the File Meta Information: what C-STORE carries (PS3.10 §7.1)."""
    _, offset = split_dataset(path)
    return path.read_bytes()[offset:]


@pytest.fixture
def storescp(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    """dcmtk's storescp in bit-preserving mode (+B), accepting every transfer syntax (+xa)."""
    port, out = free_port(), tmp_path / "received"
    out.mkdir()
    proc = subprocess.Popen(
        [dcmtk("storescp"), "+B", "+xa", "-od", str(out), "-aet", "STORESCP", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_for_port(port)
        yield port, out
    finally:
        proc.terminate()
        proc.wait(10)


def _wait_for_port(port: int) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port}")


def test_push_is_byte_exact_at_a_bit_preserving_storescp(tmp_path: Path, storescp: tuple[int, Path]) -> None:
    port, received = storescp
    folder = _folder(tmp_path)
    (folder / "day1" / "cut.dcm").unlink()  # a truncated file is a sender-side problem dcmtk stores anyway
    result = pacs("push", str(folder), "--to", f"127.0.0.1:{port}", "--aec", "STORESCP", "--parallel", "2")
    assert result.returncode == 0, result.stdout + result.stderr
    counts = _counts(result.stdout)
    assert counts["sent"] == len(GOOD) + 1
    assert counts["failed"] == 0
    assert counts["skipped (not DICOM)"] == 1
    got = {pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID: p for p in received.iterdir()}
    for name in [*GOOD, REFUSED_FILE]:
        original = Path(str(get_testdata_file(name)))
        sop = pydicom.dcmread(original, stop_before_pixels=True).SOPInstanceUID
        assert _dataset_bytes(got[sop]) == _dataset_bytes(original), name  # unchanged, same transfer syntax


def test_push_to_nobody_is_one_clear_line(tmp_path: Path) -> None:
    result = pacs("push", str(get_testdata_file("CT_small.dcm")), "--to", f"127.0.0.1:{free_port()}")
    assert result.returncode == 1
    assert result.stderr.strip().startswith("error: association with ANY-SCP@127.0.0.1:")
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.fixture
def orthanc(tmp_path: Path) -> Iterator[tuple[int, str]]:
    """A real Orthanc on loopback ports, storing whatever it is sent."""
    if not Path(ORTHANC).exists():
        pytest.skip("Orthanc not installed (apt-get install orthanc)")
    dicom_port, http_port = free_port(), free_port()
    config = tmp_path / "orthanc.json"
    config.write_text(
        json.dumps(
            {
                "Name": "test",
                "StorageDirectory": str(tmp_path / "orthanc-db"),
                "IndexDirectory": str(tmp_path / "orthanc-db"),
                "DicomAet": "ORTHANC",
                "DicomPort": dicom_port,
                "HttpPort": http_port,
                "RemoteAccessAllowed": False,
                "AuthenticationEnabled": False,
                "DicomAlwaysAllowStore": True,
                "DicomCheckCalledAet": False,
                "UnknownSopClassAccepted": True,
                "Plugins": [],
            }
        )
    )
    proc = subprocess.Popen([ORTHANC, str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_for_port(http_port)
        _wait_for_port(dicom_port)
        yield dicom_port, f"http://127.0.0.1:{http_port}"
    finally:
        proc.terminate()
        proc.wait(20)


def test_push_into_orthanc(tmp_path: Path, orthanc: tuple[int, str]) -> None:
    port, http = orthanc
    files = tmp_path / "demo"
    assert pacs("demo", "--out", str(files), "--count", "1", "--scale", "0.1").returncode == 0
    for name in GOOD:
        shutil.copyfile(str(get_testdata_file(name)), files / name)
    sent = {str(pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID) for p in files.iterdir()}
    result = pacs("push", str(files), "--to", f"127.0.0.1:{port}", "--aec", "ORTHANC")
    assert result.returncode == 0, result.stdout + result.stderr
    assert _counts(result.stdout)["sent"] == len(sent)
    instances = httpx.get(f"{http}/instances", params={"expand": "1"}, timeout=30).json()
    assert {i["MainDicomTags"]["SOPInstanceUID"] for i in instances} == sent


def test_plain_pacs_prints_the_help_and_every_command_describes_itself() -> None:
    plain = pacs()
    assert plain.returncode == 0
    assert plain.stdout.startswith("usage: pacs")
    for command in ("serve", "import", "export", "push", "demo", "verify"):
        assert command in plain.stdout
    for command in (["import"], ["export"], ["push"], ["peer", "list"], ["db", "upgrade"], ["audit", "verify"]):
        own = pacs(*command, "--help")
        assert own.returncode == 0
        description = own.stdout.split("\n\n")[1]  # usage, then the description paragraph
        assert description.strip(), command
        assert not description.startswith(("options", "positional")), command
