"""A deterministic synthetic DICONDE data set: components, inspections over time, images.

``generate_demo(seed, count, scale)`` yields ready-to-send :class:`~pydicom.dataset.Dataset`
objects (with file meta, Explicit VR Little Endian). Same seed, same bytes: UIDs are
derived from the seed. All names, serial numbers and images are invented.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import (
    ComputedRadiographyImageStorage,
    CTImageStorage,
    DigitalXRayImageStorageForPresentation,
    ExplicitVRLittleEndian,
    UltrasoundImageStorage,
    generate_uid,
)

from ndt_pacs.demo import images
from ndt_pacs.demo.images import Feature
from ndt_pacs.demo.iods import EDDY_CURRENT_IMAGE_STORAGE
from storage.dicom.diconde import register
from storage.dicom.diconde.legacy import to_legacy

DEMO_SOP_CLASSES: tuple[str, ...] = (
    str(DigitalXRayImageStorageForPresentation),
    str(ComputedRadiographyImageStorage),
    str(CTImageStorage),
    str(UltrasoundImageStorage),
    EDDY_CURRENT_IMAGE_STORAGE,
)
KINDS = ("weld", "casting", "panel")

_COMPANIES = ("Acme NDT Services Ltd", "Baltic Inspection AS", "Sierra Quality Labs Inc")
_INSPECTORS = ("Novak^Jana", "Okafor^Emeka", "Lindqvist^Erik", "Moreau^Claire", "Tanaka^Hiro", "Silva^Marta")
_LEVEL3 = ("Brandt^Uwe", "Iyer^Priya", "Kowalski^Adam")

_WELDS = (
    ("Pipe Spool^Girth Weld", "Carbon steel", "API 5L X65", 12.7, "Nordwerk Pipe Fabrication GmbH"),
    ("Pressure Vessel^Longitudinal Seam", "Low-alloy steel", "ASTM A335 P91", 18.3, "Harbour Vessel Works Ltd"),
    ("Header^Nozzle Weld", "Stainless steel", "ASTM A312 TP316L", 8.0, "Kestrel Fabricators Inc"),
)
_CASTINGS = (
    ("Pump Housing^Casting", "Aluminium alloy", "EN AC-42100 T6", 8.0, "Ridgeway Foundry plc"),
    ("Valve Body^Casting", "Aluminium alloy", "A356.0-T6", 10.0, "Ostrava Castings s.r.o."),
)
_PANELS = (
    ("Wing Skin Panel^Lap Joint", "Aluminium 2024", "2024-T3 clad AMS-QQ-A-250/5", 1.6, "Skyline Aerostructures"),
    ("Fuselage Panel^Stringer 14", "Aluminium 7075", "7075-T6 AMS 4045", 2.0, "Skyline Aerostructures"),
)
_OWNERS = {"weld": "Northsea Energy^Asset Integrity", "casting": "Fluid Systems AG", "panel": "Skyline Aero^MRO"}


@dataclass
class DemoComponent:
    """One inspected component (DICOM Patient)."""

    kind: str
    serial: str
    name: str
    material: str
    grade: str
    thickness_mm: float
    manufacturer: str
    manufactured: int  # year
    part_number: str
    welders: list[str] = field(default_factory=list)


@dataclass
class _Inspection:
    """One inspection (DICOM Study) and the images to make for it."""

    component: DemoComponent
    index: int
    date: str
    technique: str  # DX, CR, CT, US, EC
    legacy: bool
    approval: str
    company: str
    inspector: str
    certifier: str
    images: int
    indications: bool


class _Uids:
    def __init__(self, seed: int) -> None:
        self.seed = str(seed)

    def __call__(self, *parts: object) -> str:
        return str(generate_uid(entropy_srcs=["ndt-pacs demo", self.seed, *map(str, parts)]))


def components(seed: int = 0, count: int = 6) -> list[DemoComponent]:
    """The demo's components: kinds cycle weld, casting, panel so any count >= 3 covers every technique."""
    rng = np.random.default_rng([seed, 1])
    result = []
    for i in range(count):
        kind = KINDS[i % len(KINDS)]
        table = {"weld": _WELDS, "casting": _CASTINGS, "panel": _PANELS}[kind]
        name, material, grade, thickness, manufacturer = table[(i // len(KINDS)) % len(table)]
        # Welds date from 2008-2009: their first inspection predates DICOM 2011 (legacy encoding).
        year = {"weld": 2008, "casting": 2015, "panel": 2012}[kind] + int(rng.integers(0, 2 if kind == "weld" else 3))
        prefix = {"weld": "PS", "casting": "CH", "panel": "WP"}[kind]
        serial = f"{prefix}-{year}-{int(rng.integers(1000, 9999)):04d}-{i + 1:02d}"
        welders = []
        if kind == "weld":
            welders = [f"W-{int(rng.integers(100, 999)):04d}" for _ in range(2)]
        elif kind == "casting" and i % 2 == 1:
            welders = [f"W-{int(rng.integers(100, 999)):04d}"]  # repair-welded casting
        result.append(
            DemoComponent(
                kind=kind,
                serial=serial,
                name=name,
                material=material,
                grade=grade,
                thickness_mm=thickness,
                manufacturer=manufacturer,
                manufactured=year,
                part_number=f"PN-{int(rng.integers(10000, 99999))}-{chr(65 + i % 26)}",
                welders=welders,
            )
        )
    return result


def _inspections(rng: np.random.Generator, component: DemoComponent) -> list[_Inspection]:
    plan = {
        # (years after manufacture, technique, images, indications, approval)
        "weld": [(1, "DX", 2, True, "APPROVED"), (6, "CR", 1, False, "APPROVED"), (12, "DX", 2, True, "REJECTED")],
        "casting": [(0, "CT", 0, False, "APPROVED"), (3, "CT", 0, True, "UNAPPROVED")],
        "panel": [(0, "US", 1, False, "APPROVED"), (4, "EC", 1, False, "APPROVED"), (8, "US", 1, True, "REJECTED")],
    }[component.kind]
    result = []
    for index, (years, technique, count, indications, approval) in enumerate(plan):
        year = component.manufactured + years
        date = f"{year}{int(rng.integers(1, 13)):02d}{int(rng.integers(1, 29)):02d}"
        result.append(
            _Inspection(
                component=component,
                index=index,
                date=date,
                technique=technique,
                legacy=year < 2011,  # DICONDE moved to group 0014 with DICOM 2011
                approval=approval,
                company=_COMPANIES[int(rng.integers(0, len(_COMPANIES)))],
                inspector=_INSPECTORS[int(rng.integers(0, len(_INSPECTORS)))],
                certifier=_LEVEL3[int(rng.integers(0, len(_LEVEL3)))],
                images=count,
                indications=indications,
            )
        )
    return result


def _common(uid: _Uids, insp: _Inspection, sop_class: str, number: int, series: int = 1) -> Dataset:
    """Component, Component Study, Component Series, NDE Equipment, SOP Common."""
    c = insp.component
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = uid(c.serial, insp.index, series, number)
    # Component (Patient module; diconde.md §2.2) and group 0014 material attributes.
    ds.PatientName = c.name
    ds.PatientID = c.serial
    ds.PatientBirthDate = f"{c.manufactured}0301"
    ds.PatientSex = "O"
    ds.OtherPatientIDs = c.part_number
    ds.EthnicGroup = c.material  # SH: at most 16 characters
    ds.PatientComments = f"Part number {c.part_number}; material {c.material}"
    ds.ComponentManufacturer = c.manufacturer
    ds.MaterialThickness = f"{c.thickness_mm:.1f}"
    ds.MaterialGrade = c.grade
    ds.ComponentShape = "HOLLOWCYLINDER" if c.kind == "weld" else "FLAT"
    if c.welders and not insp.legacy:  # the 2010 dictionary had no welder IDs
        ds.ComponentWelderIDs = c.welders
    if c.kind == "panel":  # this device ships its own display labels (Data Element Label Dictionary)
        ds.DataElementLabelSequence = Sequence([_label_dictionary({0x00102160: "Alloy", 0x00140042: "Temper / Spec"})])
    # Component Study: one inspection.
    ds.StudyInstanceUID = uid(c.serial, insp.index, "study")
    ds.StudyDate = insp.date
    ds.StudyTime = f"{9 + insp.index:02d}{(7 * insp.index) % 60:02d}00"
    ds.StudyID = f"{insp.index + 1}"
    ds.AccessionNumber = f"JOB-{insp.date[:4]}-{abs(hash_text(c.serial)) % 10000:04d}{insp.index}"
    ds.StudyDescription = f"{insp.technique} inspection {insp.index + 1} of {c.name.replace('^', ' ')}"
    ds.ReferringPhysicianName = _OWNERS[c.kind]
    ds.PhysiciansOfRecord = insp.company
    ds.NameOfPhysiciansReadingStudy = insp.certifier
    ds.ExpiryDate = f"{int(insp.date[:4]) + 5}{insp.date[4:]}"
    # NDE Approval (RT Approval attributes reused).
    ds.ApprovalStatus = insp.approval
    if insp.approval != "UNAPPROVED":
        ds.ReviewDate = insp.date
        ds.ReviewTime = "160000"
        ds.ReviewerName = insp.certifier
    # Component Series.
    ds.Modality = insp.technique
    ds.SeriesInstanceUID = uid(c.serial, insp.index, series, "series")
    ds.SeriesNumber = series
    ds.SeriesDate = insp.date
    ds.SeriesTime = ds.StudyTime
    ds.SeriesDescription = {
        "DX": "Digital radiography (DDA)",
        "CR": "Computed radiography, imaging plate",
        "CT": "Industrial CT volume",
        "US": "UT C-scan, back-wall amplitude",
        "EC": "Eddy current array, impedance magnitude",
    }[insp.technique]
    ds.PerformingPhysicianName = insp.inspector
    ds.OperatorsName = insp.inspector
    # NDE Equipment.
    ds.Manufacturer = "Synthetic Imaging Systems"
    ds.ManufacturerModelName = {"DX": "SD-4020", "CR": "IP-Scan 35", "CT": "CTX-225", "US": "UTS-64", "EC": "ECA-32"}[
        insp.technique
    ]
    ds.DeviceSerialNumber = f"{insp.technique}-{abs(hash_text(insp.company)) % 100000:05d}"
    ds.StationName = f"{insp.technique}-STATION-{1 + insp.index % 3}"
    ds.InstitutionName = insp.company
    ds.SoftwareVersions = "ndt-pacs demo 1.0"
    # General Image.
    ds.InstanceNumber = number
    ds.PatientOrientation = ""
    ds.ContentDate = insp.date
    ds.ContentTime = ds.StudyTime
    ds.BurnedInAnnotation = "NO"
    return ds


def _label_dictionary(labels: dict[int, str]) -> Dataset:
    """One Data Element Label Sequence (0014,0200) item with an entry per relabelled tag."""
    item = Dataset()
    entries = []
    for tag, name in labels.items():
        entry = Dataset()
        entry.DataElement = tag
        entry.DataElementName = name
        entries.append(entry)
    item.DataElementLabelItemSequence = Sequence(entries)
    return item


def hash_text(text: str) -> int:
    """A stable (process-independent) small hash of *text*."""
    value = 0
    for ch in text:
        value = (value * 131 + ord(ch)) % 2_147_483_647
    return value


def _pixels(ds: Dataset, array: np.ndarray, photometric: str = "MONOCHROME2") -> None:
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.Rows, ds.Columns = int(array.shape[0]), int(array.shape[1])
    bits = array.dtype.itemsize * 8
    ds.BitsAllocated = bits
    ds.BitsStored = bits
    ds.HighBit = bits - 1
    ds.PixelRepresentation = 0
    ds.PixelData = np.ascontiguousarray(array).tobytes()
    low, high = float(np.percentile(array, 1)), float(np.percentile(array, 99))
    ds.WindowCenter = f"{(low + high) / 2:.0f}"
    ds.WindowWidth = f"{max(high - low, 1):.0f}"


def _indications(features: list[Feature], pixel_mm: float, *, kind: str) -> Sequence:
    """NDE Indication module (0014,2012): one item per planted feature (porosity merged)."""
    items = Sequence()
    seen: set[str] = set()
    for feature in features:
        if feature.kind == "POROSITY" and "POROSITY" in seen:
            continue
        seen.add(feature.kind)
        item = Dataset()
        item.IndicationNumber = len(items) + 1
        item.IndicationLabel = f"{feature.kind[0]}{len(items) + 1}"
        item.IndicationType = feature.kind
        item.IndicationDisposition = {
            "POROSITY": "ACCEPT",
            "VOID": "ACCEPT" if kind == "casting" else "HOLD",
        }.get(feature.kind, "REJECT")
        item.IndicationDescription = (
            f"{feature.kind.lower()} at x={feature.col * pixel_mm:.1f} mm y={feature.row * pixel_mm:.1f} mm, "
            f"size {feature.size_mm:.1f} mm"
        )
        items.append(item)
    return items


def _finish(ds: Dataset, legacy: bool) -> Dataset:
    if legacy:
        ds = to_legacy(ds)
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    return ds


def _radiographs(uid: _Uids, rng: np.random.Generator, insp: _Inspection, scale: float) -> Iterator[Dataset]:
    cr = insp.technique == "CR"
    rows, cols = (1024, 1536) if cr else (1024, 2048)
    rows, cols = max(64, round(rows * scale)), max(128, round(cols * scale))
    pixel_mm = round(0.1 * 1024 / rows, 4)
    for number in range(1, insp.images + 1):
        crack = insp.indications and number == 1 and insp.approval == "REJECTED"
        array, features = images.weld_radiograph(
            rng,
            rows,
            cols,
            pixel_mm,
            thickness_mm=insp.component.thickness_mm,
            pores=int(rng.integers(4, 14)),
            crack=crack,
            plate_noise=120.0 if cr else 0.0,
        )
        sop = ComputedRadiographyImageStorage if cr else DigitalXRayImageStorageForPresentation
        ds = _common(uid, insp, str(sop), number)
        ds.ImageType = ["ORIGINAL", "PRIMARY"]
        ds.ImageLaterality = "U"
        ds.BodyPartExamined = ""
        ds.ViewPosition = ""
        ds.KVP = "220" if insp.component.thickness_mm < 15 else "300"
        ds.ExposureTime = 12000
        ds.DistanceSourceToDetector = "700"
        ds.ImagerPixelSpacing = [pixel_mm, pixel_mm]
        ds.PixelSpacing = [pixel_mm, pixel_mm]
        ds.PixelSpacingCalibrationType = "GEOMETRY"
        ds.PixelSpacingCalibrationDescription = "Contact radiography, magnification 1.0"
        ds.EstimatedRadiographicMagnificationFactor = "1.0"
        if not cr:
            ds.PresentationIntentType = "FOR PRESENTATION"
            ds.PixelIntensityRelationship = "LIN"
            ds.PixelIntensityRelationshipSign = 1  # higher value = more radiation = less material
            ds.RescaleIntercept = "0"
            ds.RescaleSlope = "1"
            ds.RescaleType = "US"
            ds.PresentationLUTShape = "INVERSE"  # shown like film: thin (pores, cracks) dark
            ds.LossyImageCompression = "00"
            ds.DetectorType = "SCINTILLATOR"
            ds.DetectorID = "DDA-0042"
        else:
            ds.PlateID = f"IP-{number:03d}"
        _pixels(ds, array, "MONOCHROME1")
        if insp.indications and (number == 1):
            ds.IndicationSequence = _indications(features, pixel_mm, kind=insp.component.kind)
        yield _finish(ds, insp.legacy)


def _ct_volume(uid: _Uids, rng: np.random.Generator, insp: _Inspection, scale: float) -> Iterator[Dataset]:
    size = max(32, round(256 * scale))
    slices = max(4, round(32 * scale))
    pixel_mm = round(60.0 / size, 4)
    thickness = round(16.0 / slices, 4)
    c_rng = np.random.default_rng([hash_text(insp.component.serial), 7])  # same casting every inspection
    pores = []
    for _ in range(14):
        radius = float(c_rng.uniform(0.26, 0.38)) * 60.0
        angle = float(c_rng.uniform(0, 2 * np.pi))
        pores.append(
            (
                radius * np.cos(angle),
                radius * np.sin(angle),
                float(c_rng.uniform(0, 16)),
                float(c_rng.uniform(0.6, 1.8)),
            )
        )
    frame_uid = uid(insp.component.serial, insp.index, "frame")
    for k in range(slices):
        z = (k + 0.5) * thickness
        ds = _common(uid, insp, str(CTImageStorage), k + 1)
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.FrameOfReferenceUID = frame_uid
        ds.PositionReferenceIndicator = ""
        ds.PixelSpacing = [pixel_mm, pixel_mm]
        ds.SliceThickness = f"{thickness}"
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.ImagePositionPatient = [-30.0, -30.0, round(z, 4)]
        ds.SliceLocation = f"{z:.4f}"
        ds.RescaleIntercept = "-1024"
        ds.RescaleSlope = "1"
        ds.RescaleType = "HU"
        ds.KVP = "225"
        ds.AcquisitionNumber = 1
        ds.ConvolutionKernel = "STANDARD"
        _pixels(ds, images.casting_ct_slice(rng, size, pixel_mm, z, pores))
        ds.WindowCenter, ds.WindowWidth = "700", "4000"
        if insp.indications and k == slices // 2:
            biggest = max(pores, key=lambda p: p[3])
            feature = Feature("VOID", (biggest[1] + 30) / pixel_mm, (biggest[0] + 30) / pixel_mm, 2 * biggest[3])
            ds.IndicationSequence = _indications([feature], pixel_mm, kind="casting")
        yield _finish(ds, insp.legacy)


def _ut_or_ec(uid: _Uids, rng: np.random.Generator, insp: _Inspection, scale: float) -> Iterator[Dataset]:
    if insp.technique == "US":
        rows, cols = max(32, round(300 * scale)), max(48, round(400 * scale))
        pixel_mm = round(0.5 * 300 / rows, 4)
        array, features = images.ut_cscan(rng, rows, cols, pixel_mm)
        ds = _common(uid, insp, str(UltrasoundImageStorage), 1)
        ds.ImageType = ["ORIGINAL", "PRIMARY", "", "0000"]
        region = Dataset()
        region.RegionSpatialFormat = 1  # 2D
        region.RegionDataType = 1  # tissue (here: material) image
        region.RegionFlags = 0
        region.RegionLocationMinX0, region.RegionLocationMinY0 = 0, 0
        region.RegionLocationMaxX1, region.RegionLocationMaxY1 = cols - 1, rows - 1
        region.PhysicalUnitsXDirection = 3  # cm
        region.PhysicalUnitsYDirection = 3
        region.PhysicalDeltaX = pixel_mm / 10
        region.PhysicalDeltaY = pixel_mm / 10
        ds.SequenceOfUltrasoundRegions = Sequence([region])
        ds.TransducerFrequency = 5000  # kHz... (0018,6030) UL, units of kHz
        ds.PixelSpacing = [pixel_mm, pixel_mm]
    else:
        rows, cols = max(32, round(256 * scale)), max(64, round(512 * scale))
        pixel_mm = round(0.25 * 256 / rows, 4)
        array, features = images.eddy_current_map(rng, rows, cols, pixel_mm)
        ds = _common(uid, insp, EDDY_CURRENT_IMAGE_STORAGE, 1)
        ds.ImageType = ["ORIGINAL", "PRIMARY"]
        ds.PixelSpacing = [pixel_mm, pixel_mm]
    _pixels(ds, array)
    if insp.indications:
        ds.IndicationSequence = _indications(features, pixel_mm, kind=insp.component.kind)
    yield _finish(ds, insp.legacy)


def generate_demo(seed: int = 0, count: int = 6, scale: float = 1.0) -> Iterator[Dataset]:
    """Yield the demo instances: *count* components, several inspections each, over the years.

    *scale* multiplies image sizes (1.0: DX 2048x1024, CT 256² x 32 slices; tests use ~0.1).
    Deterministic: the same arguments give the same data sets, UIDs included.
    """
    if count < 0 or not 0 < scale <= 4:
        raise ValueError("count must be >= 0 and 0 < scale <= 4")
    register()
    return _generate(seed, count, scale)


def _generate(seed: int, count: int, scale: float) -> Iterator[Dataset]:
    uid = _Uids(seed)
    for component in components(seed, count):
        rng = np.random.default_rng([seed, hash_text(component.serial)])
        for insp in _inspections(rng, component):
            if insp.technique in ("DX", "CR"):
                yield from _radiographs(uid, rng, insp, scale)
            elif insp.technique == "CT":
                yield from _ct_volume(uid, rng, insp, scale)
            else:
                yield from _ut_or_ec(uid, rng, insp, scale)
