"""Required (Type 1 and 2) attributes per IOD, for validating generated instances (PS3.3 Annex A).

Covers the IODs the demo produces. Eddy Current Image (601.1, ASTM E2934) reuses the
general image modules; its IOD table is not public, so the general-image set is checked.
"""

from __future__ import annotations

from pydicom.dataset import Dataset
from pydicom.uid import (
    ComputedRadiographyImageStorage,
    CTImageStorage,
    DigitalXRayImageStorageForPresentation,
    UltrasoundImageStorage,
)

EDDY_CURRENT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.601.1"

_PATIENT = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex")
_STUDY = ("StudyInstanceUID", "StudyDate", "StudyTime", "ReferringPhysicianName", "StudyID", "AccessionNumber")
_SERIES = ("Modality", "SeriesInstanceUID", "SeriesNumber")
_EQUIPMENT = ("Manufacturer",)
_IMAGE = ("InstanceNumber", "PatientOrientation")
_PIXEL = (
    "SamplesPerPixel",
    "PhotometricInterpretation",
    "Rows",
    "Columns",
    "BitsAllocated",
    "BitsStored",
    "HighBit",
    "PixelRepresentation",
    "PixelData",
)
_SOP = ("SOPClassUID", "SOPInstanceUID")
_COMMON = _PATIENT + _STUDY + _SERIES + _EQUIPMENT + _IMAGE + _PIXEL + _SOP

REQUIRED: dict[str, tuple[str, ...]] = {
    # A.26 DX Image IOD: DX Series, DX Anatomy Imaged, DX Image, DX Detector modules.
    str(DigitalXRayImageStorageForPresentation): _COMMON
    + (
        "PresentationIntentType",
        "ImageLaterality",
        "ImageType",
        "PixelIntensityRelationship",
        "PixelIntensityRelationshipSign",
        "RescaleIntercept",
        "RescaleSlope",
        "RescaleType",
        "PresentationLUTShape",
        "LossyImageCompression",
        "BurnedInAnnotation",
        "DetectorType",
        "ImagerPixelSpacing",
        "PixelSpacing",
    ),
    # A.2 CR Image IOD: CR Series, CR Image modules.
    str(ComputedRadiographyImageStorage): _COMMON + ("BodyPartExamined", "ViewPosition", "ImagerPixelSpacing"),
    # A.3 CT Image IOD: Frame of Reference, Image Plane, CT Image modules.
    str(CTImageStorage): _COMMON
    + (
        "FrameOfReferenceUID",
        "PositionReferenceIndicator",
        "PixelSpacing",
        "ImageOrientationPatient",
        "ImagePositionPatient",
        "SliceThickness",
        "ImageType",
        "RescaleIntercept",
        "RescaleSlope",
        "KVP",
        "AcquisitionNumber",
    ),
    # A.6 US Image IOD: US Image module (+ region calibration for measurements in mm).
    str(UltrasoundImageStorage): _COMMON + ("ImageType", "SequenceOfUltrasoundRegions"),
    # Eddy Current Image (ASTM E2934): general image + spacing so measurements are in mm.
    EDDY_CURRENT_IMAGE_STORAGE: _COMMON + ("ImageType", "PixelSpacing"),
}


def missing_attributes(ds: Dataset) -> list[str]:
    """Keywords required by *ds*'s IOD that are absent (Type 2 may be empty, not absent)."""
    sop_class = str(ds.get("SOPClassUID", ""))
    required = REQUIRED.get(sop_class)
    if required is None:
        return [f"SOPClassUID {sop_class!r} has no IOD table here"]
    missing = [k for k in required if k not in ds]
    # Type 1 among the identity/pixel attributes must also be non-empty.
    for keyword in _SERIES + _PIXEL + _SOP + ("StudyInstanceUID",):
        if keyword in ds and ds[keyword].value in (None, "", b""):
            missing.append(f"{keyword} (empty)")
    return missing
