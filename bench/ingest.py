"""Ingest benchmark: dcmtk storescu -> ndt-pacs vs dcmtk storescp (and Orthanc when installed).

Generates N small CT-like instances (~39 kB each, like pynetdicom's benchmark data set), then
pushes the folder over ONE association (or --parallel N at once) with dcmtk `storescu` to each
receiver in turn, on loopback with TCP_NODELAY=1 in every process. Prints instances/s and MB/s per
receiver and the ratio against the references.

ndt-pacs runs as `pacs serve` does by default (deferred indexing): its A-RELEASE is answered
only once every instance of the association is indexed, so its time is the time until the
last instance is findable. ``--immediate`` adds a run with ``PACS_DEFERRED_INDEX=false``
(each C-STORE answered after its index transaction).
Usage: python bench/ingest.py [--count 1000] [--large 0] [--parallel 8] [--workers 2] [--immediate]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, DigitalXRayImageStorageForPresentation, ExplicitVRLittleEndian, generate_uid

ENV = {**os.environ, "TCP_NODELAY": "1"}
STORESCU = "/usr/bin/storescu"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_corpus(folder: Path, count: int, rows: int, cols: int, sop_class: str, modality: str) -> int:
    study, series = generate_uid(), generate_uid()
    pixels = (np.random.default_rng(1).integers(0, 4096, rows * cols, dtype=np.uint16)).tobytes()
    total = 0
    for n in range(count):
        ds = Dataset()
        ds.SOPClassUID, ds.SOPInstanceUID = sop_class, generate_uid()
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
        ds.PatientID, ds.PatientName, ds.Modality = "BENCH-1", "Bench^Part", modality
        ds.StudyDate, ds.InstanceNumber = "20260101", n + 1
        ds.Rows, ds.Columns, ds.SamplesPerPixel = rows, cols, 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
        ds.PixelData = pixels
        ds.file_meta = FileMetaDataset()
        ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        path = folder / f"{n:05d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        total += path.stat().st_size
    return total


def wait_port(port: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"port {port} never opened")


ASSOCIATIONS = 1  # set by --parallel: associations pushing at once, each a share of the corpus
WORKERS = 1  # set by --workers: ndt-pacs receiver processes (PACS_DICOM_WORKERS)


def wait_listeners(port: int, count: int, timeout: float = 60) -> None:
    """Wait until *count* processes listen on *port* (the receiver workers start after the server)."""
    deadline = time.monotonic() + timeout
    while count > 1 and time.monotonic() < deadline:
        out = subprocess.run(["ss", "-Hltnp", f"sport = :{port}"], capture_output=True, text=True, check=False)
        if out.stdout.count("pid=") >= count:
            return
        time.sleep(0.2)


def push(folder: Path, port: int, aet: str) -> float:
    """Push every file of *folder* with dcmtk storescu over ASSOCIATIONS concurrent associations."""
    files = sorted(folder.iterdir())
    shares = [files[n::ASSOCIATIONS] for n in range(ASSOCIATIONS)]
    start = time.perf_counter()
    senders = [
        subprocess.Popen(
            [STORESCU, "-aec", aet, "127.0.0.1", str(port), *map(str, share)],
            env=ENV,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for share in shares
        if share
    ]
    failures = [sender.communicate()[1] for sender in senders if sender.wait() != 0]
    elapsed = time.perf_counter() - start
    if failures:
        raise RuntimeError(f"storescu failed: {failures[0][-2000:]}")
    return elapsed


def run_ndt_pacs(folder: Path, work: Path, extra_env: dict[str, str] | None = None) -> float:
    port, http = free_port(), free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ndt_pacs",
            "serve",
            "--data-dir",
            str(work / "pacs"),
            "--host",
            "127.0.0.1",
            "--dicom-port",
            str(port),
            "--http-port",
            str(http),
            "--dicom-workers",
            str(WORKERS),
        ],
        env={**ENV, **(extra_env or {})},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_port(http)
        urllib.request.urlopen(f"http://127.0.0.1:{http}/healthz").read()
        wait_listeners(port, WORKERS)
        return push(folder, port, "NDTPACS")
    finally:
        proc.terminate()
        proc.wait(60)


def run_storescp(folder: Path, work: Path) -> float:
    port = free_port()
    out = work / "storescp"
    out.mkdir()
    proc = subprocess.Popen(
        ["/usr/bin/storescp", "-od", str(out), "+B", str(port)],
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_port(port)
        return push(folder, port, "STORESCP")
    finally:
        proc.terminate()
        proc.wait(30)


def run_orthanc(folder: Path, work: Path) -> float | None:
    if not shutil.which("Orthanc"):
        return None
    port, http = free_port(), free_port()
    config = work / "orthanc.json"
    config.write_text(
        json.dumps(
            {
                "StorageDirectory": str(work / "orthanc-db"),
                "IndexDirectory": str(work / "orthanc-db"),
                "DicomPort": port,
                "HttpPort": http,
                "DicomAet": "ORTHANC",
                "RemoteAccessAllowed": False,
                "AuthenticationEnabled": False,
                "DicomCheckCalledAet": False,
                "Plugins": [],
                "TcpNoDelay": True,
                "StorageCompression": False,
            }
        )
    )
    proc = subprocess.Popen(["Orthanc", str(config)], env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(port)
        return push(folder, port, "ORTHANC")
    finally:
        proc.terminate()
        proc.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=1000, help="small CT instances (default 1000)")
    parser.add_argument("--large", type=int, default=24, help="8 MB DX instances (default 24; 0 to skip)")
    parser.add_argument("--parallel", type=int, default=1, help="concurrent associations (default 1)")
    parser.add_argument("--workers", type=int, default=1, help="ndt-pacs receiver processes (default 1)")
    parser.add_argument("--immediate", action="store_true", help="also run ndt-pacs with PACS_DEFERRED_INDEX=false")
    args = parser.parse_args()
    global ASSOCIATIONS, WORKERS  # benchmark knobs read by push() and run_ndt_pacs()
    ASSOCIATIONS, WORKERS = max(1, args.parallel), max(1, args.workers)
    with tempfile.TemporaryDirectory(prefix="pacs-bench-") as tmp:
        root = Path(tmp)
        corpora = [("small CT (~39 kB)", args.count, 128, 152, CTImageStorage, "CT")]
        if args.large:
            corpora.append(("large DX (~8.4 MB)", args.large, 2048, 2048, DigitalXRayImageStorageForPresentation, "DX"))
        for label, count, rows, cols, sop_class, modality in corpora:
            folder = root / f"corpus-{modality}"
            folder.mkdir()
            size = make_corpus(folder, count, rows, cols, sop_class, modality)
            how = "one association" if ASSOCIATIONS == 1 else f"{ASSOCIATIONS} associations at once"
            print(f"\n== {label}: {count} instances, {size / 1e6:.1f} MB, {how}, TCP_NODELAY=1")
            results: dict[str, float | None] = {}
            runners: list[tuple[str, Callable[[Path, Path], float | None]]] = [
                ("dcmtk storescp", run_storescp),
                ("Orthanc", run_orthanc),
                ("ndt-pacs", run_ndt_pacs),
            ]
            if args.immediate:
                runners.append(
                    ("ndt-pacs immediate", lambda f, w: run_ndt_pacs(f, w, {"PACS_DEFERRED_INDEX": "false"}))
                )
            for name, runner in runners:
                work = root / f"{modality}-{name.replace(' ', '-')}"
                work.mkdir()
                results[name] = runner(folder, work)
                seconds = results[name]
                if seconds is None:
                    print(f"{name:18s} not installed")
                else:
                    print(f"{name:18s} {seconds:7.2f} s {count / seconds:8.1f} inst/s {size / 1e6 / seconds:8.1f} MB/s")
            for mine in ("ndt-pacs", "ndt-pacs immediate"):
                ours = results.get(mine)
                for ref in ("dcmtk storescp", "Orthanc"):
                    reference = results[ref]
                    if reference and ours:
                        print(f"{mine} speed vs {ref}: {reference / ours:.2f}x")


if __name__ == "__main__":
    main()
