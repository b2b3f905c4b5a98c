"""Test-side DICOM clients: pynetdicom SCU helpers (the server side is always ours)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from pydicom.dataset import Dataset
from pynetdicom import AE
from pynetdicom.association import Association

from pacs.service_uids import PATIENT_ROOT_FIND, STUDY_ROOT_FIND, VERIFICATION


@contextmanager
def associate(port: int, contexts: list[tuple[str, list[str]]], *, called: str = "NDTPACS") -> Iterator[Association]:
    """An established association with our listener on 127.0.0.1:*port*."""
    ae = AE(ae_title="TESTSCU")
    ae.network_timeout = 30
    ae.acse_timeout = 30
    ae.dimse_timeout = 60
    for abstract, syntaxes in contexts:
        ae.add_requested_context(abstract, syntaxes)
    assoc = ae.associate("127.0.0.1", port, ae_title=called)
    assert assoc.is_established, "association was not accepted"
    try:
        yield assoc
    finally:
        if assoc.is_established:
            assoc.release()
        ae.shutdown()


def find(port: int, identifier: Dataset, *, model: str = STUDY_ROOT_FIND) -> tuple[list[Dataset], int]:
    """Run one C-FIND; return the matches and the final status."""
    results: list[Dataset] = []
    final = -1
    with associate(port, [(model, ["1.2.840.10008.1.2.1", "1.2.840.10008.1.2"])]) as assoc:
        for status, answer in assoc.send_c_find(identifier, model):
            code = int(status.Status) if status else -1
            if code in (0xFF00, 0xFF01) and answer is not None:
                results.append(answer)
            else:
                final = code
    return results, final


def identifier(level: str, **keys: Any) -> Dataset:
    """A C-FIND identifier: *keys* are matching (non-empty) or return (empty string) keys."""
    ds = Dataset()
    ds.QueryRetrieveLevel = level
    for keyword, value in keys.items():
        setattr(ds, keyword, value)
    return ds


__all__ = ["PATIENT_ROOT_FIND", "STUDY_ROOT_FIND", "VERIFICATION", "associate", "find", "identifier"]
