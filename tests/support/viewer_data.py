"""Synthetic archive content for the viewer tests (API and browser): known serials, sizes and spacings."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset
from pydicom.uid import DigitalXRayImageStorageForPresentation, generate_uid

from storage.archive import Archive
from storage.audit import Actor
from tests.support.factories import make_instance, write_part10

ACTOR = Actor(name="viewer-test", kind="system")
WELD_SERIAL = "SN-WELD-4711"
CT_SERIAL = "SN-CT-0815"
XSS_SERIAL = "SN-XSS-1"
XSS_NAME = "<script>window.__xss=1</script><b>bold</b>"
XSS_DESCRIPTION = '<img src=x onerror="window.__xss=2">'
# The weld radiograph: two bright markers 1000 px apart on row 800, 0.05 mm imager pixels -> 50.00 mm.
RADIOGRAPH_SHAPE = (1600, 2200)
MARKERS = ((600, 800), (1600, 800))
SPACING_MM = 0.05
CT_SLICES = 12


def radiograph_pixels() -> np.ndarray:
    rows, columns = RADIOGRAPH_SHAPE
    y, x = np.mgrid[0:rows, 0:columns]
    image = (8000 + 20000 * (x / columns) + 3000 * np.sin(y / 40.0)).astype(np.uint16)
    image[780:820, 200:2000] = 30000  # the weld seam
    for mx, my in MARKERS:
        image[my - 3 : my + 4, mx - 3 : mx + 4] = 65000
    return image


def _dx(study: str, series: str, date: str, **extra: object) -> Dataset:
    rows, columns = RADIOGRAPH_SHAPE
    ds = make_instance(
        rows=rows,
        columns=columns,
        sop_class_uid=DigitalXRayImageStorageForPresentation,
        modality="DX",
        StudyInstanceUID=study,
        SeriesInstanceUID=series,
        StudyDate=date,
        **extra,
    )
    del ds.PixelSpacing
    ds.ImagerPixelSpacing = [SPACING_MM, SPACING_MM]
    ds.WindowCenter = 20000
    ds.WindowWidth = 30000
    ds.PixelData = radiograph_pixels().tobytes()
    return ds


def weld_component_datasets() -> list[Dataset]:
    """Component WELD_SERIAL: an older and a newer DX inspection of the same weld."""
    common = {
        "PatientID": WELD_SERIAL,
        "PatientName": "Pipe^Weld 7",
        "EthnicGroup": "S355",
        "ComponentWelderIDs": ["W-17", "W-22"],
        "PhysiciansOfRecord": "Acme NDT",
    }
    old = _dx(
        generate_uid(), generate_uid(), "20240301", StudyDescription="Weld 7 initial", AccessionNumber="JOB-1", **common
    )
    new = _dx(
        generate_uid(),
        generate_uid(),
        "20260115",
        StudyDescription="Weld 7 re-inspection",
        AccessionNumber="JOB-2",
        **common,
    )
    return [old, new]


def ct_stack_datasets() -> list[Dataset]:
    """Component CT_SERIAL: one CT series of CT_SLICES single-frame slices, each a different disc."""
    study, series = generate_uid(), generate_uid()
    out = []
    for k in range(CT_SLICES):
        y, x = np.mgrid[0:64, 0:64]
        radius = 4 + 2 * k
        pixels = np.where((x - 32) ** 2 + (y - 32) ** 2 < radius**2, 3000, 200).astype(np.uint16)
        ds = make_instance(
            PatientID=CT_SERIAL,
            PatientName="Casting^Housing",
            EthnicGroup="AlSi7Mg",
            PhysiciansOfRecord="CT Lab",
            StudyInstanceUID=study,
            SeriesInstanceUID=series,
            StudyDate="20251010",
            StudyDescription="Housing CT",
            InstanceNumber=k + 1,
            RescaleSlope=1,
            RescaleIntercept=-1000,
        )
        ds.PixelData = pixels.tobytes()
        out.append(ds)
    return out


def xss_datasets() -> list[Dataset]:
    """A component whose text values are hostile HTML."""
    ds = make_instance(
        PatientID=XSS_SERIAL,
        PatientName=XSS_NAME,
        StudyDescription=XSS_DESCRIPTION,
        EthnicGroup="<i>steel</i>",
        PhysiciansOfRecord="Evil & Co <svg onload=alert(1)>",
    )
    return [ds]


def fill(archive: Archive, tmp: Path, *, extra_components: int = 0) -> dict[str, list[Dataset]]:
    """Store the viewer test data (and *extra_components* small components) into *archive*."""
    tmp.mkdir(parents=True, exist_ok=True)
    groups = {"weld": weld_component_datasets(), "ct": ct_stack_datasets(), "xss": xss_datasets()}
    groups["extra"] = [
        make_instance(
            PatientID=f"SN-BULK-{i:03d}", PhysiciansOfRecord="Bulk Inspect", StudyDate=f"2025{(i % 12) + 1:02d}01"
        )
        for i in range(extra_components)
    ]
    for datasets in groups.values():
        for ds in datasets:
            path = write_part10(ds, tmp / f"{ds.SOPInstanceUID}.dcm")
            archive.store_file(path, ACTOR, move=True)
    return groups
