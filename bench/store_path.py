"""The DIMSE receive cost alone: a C-STORE handler that only answers success, pynetdicom vs pacs/fast_store.py.

Same listener set-up as ``pacs serve`` (build_ae: reactor, TCP_NODELAY, unlimited PDU) without
the archive, so the figures are what the receive path costs per instance. dcmtk ``storescu``
pushes N small CT instances over one association to each in turn, alternating.
Usage: python bench/store_path.py [--count 1000] [--rounds 2]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

from pydicom.uid import CTImageStorage
from pynetdicom import evt

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import ingest

from pacs.fast_store import FastStore
from pacs.server import NoDelayAssociationServer, build_ae
from pacs.settings import DicomSettings
from pacs.sop_classes import storage_sop_classes


def succeed(event: Any) -> int:
    """Answer success; the receive path deletes the spooled file afterwards."""
    return 0x0000


def run(corpus: Path, spool: Path, fast: bool) -> float:
    ae = build_ae(DicomSettings(host="127.0.0.1", dicom_port=0))
    handlers: list[Any] = [(evt.EVT_C_STORE, succeed)]
    if fast:
        handlers += FastStore(spool, storage_sop_classes()).handlers()
    server = ae.make_server(("127.0.0.1", 0), evt_handlers=handlers, server_class=NoDelayAssociationServer)
    ae._servers.append(server)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        return ingest.push(corpus, int(server.server_address[1]), "NDTPACS")
    finally:
        ae.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        corpus, spool = Path(tmp) / "corpus", Path(tmp) / "spool"
        corpus.mkdir()
        spool.mkdir()
        ingest.make_corpus(corpus, args.count, 128, 128, CTImageStorage, "CT")
        for _ in range(args.rounds):
            for fast in (False, True):
                seconds = run(corpus, spool, fast)
                name = "fast path" if fast else "pynetdicom"
                print(f"{name:11s} {seconds:6.2f} s  {seconds * 1000 / args.count:5.2f} ms/instance", flush=True)


if __name__ == "__main__":
    main()
