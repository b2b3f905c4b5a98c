"""NDT names of DICOM attributes (DICONDE, ASTM E2339), in one place for the API and the UI.

Keys are DICOM keywords; the values are what an inspector reads. Attributes listed here are
shown first in instance details, in this order.
"""

from __future__ import annotations

NDT_LABELS: dict[str, str] = {
    "PatientID": "Component ID / serial",
    "PatientName": "Component name",
    "PatientBirthDate": "Manufacturing date",
    "EthnicGroup": "Material",
    "ComponentManufacturer": "Component manufacturer",
    "MaterialThickness": "Material thickness",
    "MaterialGrade": "Material grade",
    "ComponentWelderIDs": "Welder IDs",
    "PatientComments": "Component notes",
    "StudyInstanceUID": "Inspection UID",
    "StudyDate": "Inspection date",
    "StudyTime": "Inspection time",
    "AccessionNumber": "Order / job number",
    "StudyDescription": "Inspection description",
    "ReferringPhysicianName": "Component owner",
    "PhysiciansOfRecord": "Inspecting company",
    "NameOfPhysiciansReadingStudy": "Certifying inspector",
    "ExpiryDate": "Expiry date",
    "SeriesInstanceUID": "Series UID",
    "Modality": "Modality",
    "SeriesDescription": "Series description",
    "PerformingPhysicianName": "Inspector",
    "OperatorsName": "Operator",
    "InstitutionName": "Company",
    "StationName": "Station",
    "Manufacturer": "Device manufacturer",
    "DeviceSerialNumber": "Device serial number",
    "SOPInstanceUID": "Image UID",
    "InstanceNumber": "Image number",
    "PixelSpacing": "Pixel spacing (mm)",
    "ImagerPixelSpacing": "Imager pixel spacing (mm)",
    "NominalScannedPixelSpacing": "Nominal scanned pixel spacing (mm)",
}


def ndt_label(keyword: str) -> str | None:
    """The NDT label of *keyword*, if it has one."""
    return NDT_LABELS.get(keyword)
