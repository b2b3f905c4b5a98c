"""Synthetic test instances, generated here (no data copied from elsewhere)."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

_counter = itertools.count(1)


def make_instance(
    *,
    rows: int = 64,
    columns: int = 64,
    sop_class_uid: str = CTImageStorage,
    modality: str = "CT",
    **attributes: Any,
) -> Dataset:
    """A small, valid 16-bit image instance with NDT-flavoured identity; override any keyword."""
    n = next(_counter)
    ds = Dataset()
    ds.SOPClassUID = sop_class_uid
    ds.SOPInstanceUID = generate_uid()
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.PatientID = f"SN-{n:06d}"
    ds.PatientName = f"Weld^Flange {n}"
    ds.StudyDate = "20260115"
    ds.StudyTime = "101500"
    ds.AccessionNumber = f"JOB-{n:04d}"
    ds.StudyID = str(n)
    ds.Modality = modality
    ds.SeriesNumber = 1
    ds.InstanceNumber = 1
    ds.Rows = rows
    ds.Columns = columns
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0
    ds.PixelSpacing = [0.1, 0.1]
    ds.PixelData = (np.arange(rows * columns, dtype=np.uint16) % 4096).tobytes()
    for keyword, value in attributes.items():
        setattr(ds, keyword, value)
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    return ds


def write_part10(ds: Dataset, path: Path) -> Path:
    """Write *ds* as a DICOM Part 10 file and return its path."""
    ds.save_as(path, enforce_file_format=True)
    return path
