"""A DICOM File-set with its DICOMDIR (PS3.10 §8, PS3.3 Annex F), the way results go to customers on media.

pydicom's :class:`~pydicom.fileset.FileSet` lays out the files (8-character upper-case File IDs,
PS3.10 §8.2) and writes the DICOMDIR; the files themselves are the originals, copied byte for byte
over what pydicom staged. The directory records need some Type 1 keys that NDT devices often leave
out (PS3.3 F.5: Study ID, Series Number, Instance Number ...): the record gets a stand-in value,
the file is untouched.
"""

from __future__ import annotations

import shutil
import tempfile
import warnings
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.fileset import FileSet

# Type 1 record keys (PS3.3 F.5.1-F.5.4) and where a stand-in comes from when the instance lacks them.
_FALLBACKS: dict[str, tuple[str, ...]] = {
    "PatientID": (),
    "StudyDate": ("SeriesDate", "AcquisitionDate", "ContentDate"),
    "StudyTime": ("SeriesTime", "AcquisitionTime", "ContentTime"),
    "StudyID": ("AccessionNumber",),
    "Modality": (),
    "SeriesNumber": (),
    "InstanceNumber": (),
}
_DEFAULTS = {"PatientID": "UNKNOWN", "StudyTime": "000000", "StudyID": "1", "Modality": "OT"}


def _record_keys(ds: Dataset, ordinal: int) -> None:
    """Give *ds* (a header copy) a value for every Type 1 record key it lacks."""
    for keyword, sources in _FALLBACKS.items():
        if keyword in ds and ds[keyword].VM:
            continue
        value = next((ds[s].value for s in sources if s in ds and ds[s].VM), None)
        if value is None:
            if keyword == "StudyDate":
                value = datetime.now(UTC).strftime("%Y%m%d")
            elif keyword in ("SeriesNumber", "InstanceNumber"):
                value = ordinal
            else:
                value = _DEFAULTS[keyword]
        setattr(ds, keyword, value)


def write_fileset(files: Sequence[Path], directory: Path, *, fileset_id: str = "NDTPACS") -> list[Path]:
    """Write *files* (Part 10, any transfer syntax) as a File-set with a DICOMDIR in *directory*.

    Returns the paths written, DICOMDIR first. Each file is copied unchanged.
    """
    fs = FileSet()
    fs.ID = fileset_id[:16]
    sources: dict[str, Path] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for ordinal, path in enumerate(files, start=1):
            ds = dcmread(path, stop_before_pixels=True)
            _record_keys(ds, ordinal)
            sources[str(ds.SOPInstanceUID)] = path
            fs.add(ds)
        with tempfile.TemporaryDirectory(prefix="fileset-", dir=directory.parent) as staging:
            fs.write(staging)
            written = [directory / "DICOMDIR"]
            directory.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(Path(staging) / "DICOMDIR", written[0])
            for instance in fs:
                target = directory / instance.FileID
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(sources[str(instance.SOPInstanceUID)], target)
                written.append(target)
    return written
