"""The inspection report of a released evaluation, as PDF (reportlab).

What an auditor reads (ndt-workflow §2.3, §3.1 step 6): the component, the inspection and its
technique, each marked image with its indications drawn, the indications table with sizes and
dispositions, the acceptance standard, and every signature with printed name, UTC time,
meaning and qualification (21 CFR 11.50(b): the signature's manifestation is part of any
human-readable form of the record).
"""

from __future__ import annotations

import io
from collections.abc import Callable
from datetime import datetime
from xml.sax.saxutils import escape

import numpy as np
from PIL import Image, ImageDraw
from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import getSampleStyleSheet
from reportlab.lib.units import mm
from reportlab.platypus import Image as PdfImage
from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

from storage.records.diconde_export import ImageInfo, Release
from storage.records.indications import IndicationRecord

MAX_SIDE = 1200  # pixels of the images drawn into the report


def _first(header: dict[str, object], tag: str) -> str:
    element = header.get(tag)
    values = element.get("Value") if isinstance(element, dict) else None
    if not values:
        return ""
    value = values[0]
    if isinstance(value, dict):
        return str(value.get("Alphabetic", ""))
    return str(value)


def to_8bit(pixels: np.ndarray, header: dict[str, object]) -> np.ndarray:
    """A grayscale frame as 8 bits: the stored window when there is one, else the 1st-99th percentile."""
    values = pixels.astype(np.float64)
    slope = float(_first(header, "00281053") or 1) or 1.0
    values = values * slope + float(_first(header, "00281052") or 0)
    try:
        center, width = float(_first(header, "00281050")), float(_first(header, "00281051"))
    except ValueError:
        low, high = np.percentile(values, (1, 99))
        center, width = (low + high) / 2, max(high - low, 1.0)
    out = np.clip((values - (center - width / 2)) / max(width, 1.0), 0, 1) * 255
    if _first(header, "00280004") == "MONOCHROME1":
        out = 255 - out
    return out.astype(np.uint8)


def draw(image: Image.Image, scale: float, indications: list[IndicationRecord], dispositions: dict[str, str]) -> None:
    """Draw each indication's region and number onto *image* (already scaled by *scale*)."""
    pen = ImageDraw.Draw(image)
    for indication in indications:
        color = {"REJECT": (220, 30, 30), "ACCEPT": (30, 170, 60)}.get(
            dispositions.get(str(indication.id), ""), (240, 170, 0)
        )
        pts = [(x * scale, y * scale) for x, y in indication.points]
        if indication.kind == "point":
            (x, y) = pts[0]
            pen.ellipse((x - 6, y - 6, x + 6, y + 6), outline=color, width=3)
        elif indication.kind == "rect":
            (x0, y0), (x1, y1) = pts
            pen.rectangle((min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)), outline=color, width=3)
        elif indication.kind == "ellipse":
            (x0, y0), (x1, y1) = pts
            pen.ellipse((min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)), outline=color, width=3)
        elif indication.kind == "polygon":
            pen.line([*pts, pts[0]], fill=color, width=3)
        else:
            pen.line(pts, fill=color, width=3)
        pen.text((pts[0][0] + 6, pts[0][1] - 16), f"#{indication.number}", fill=color)


def _size(value: float | None, unit: str) -> str:
    return "" if value is None else f"{value:.2f} {unit}"


def build_report(release: Release, frames: Callable[[ImageInfo, int], np.ndarray], now: datetime) -> bytes:
    """The PDF report of *release*; *frames(image, number)* gives a frame's stored pixel values."""
    styles = getSampleStyleSheet()
    body = styles["BodyText"]

    def para(text: str) -> Paragraph:
        return Paragraph(escape(text), body)

    buffer = io.BytesIO()
    doc = SimpleDocTemplate(
        buffer,
        pagesize=A4,
        title=f"NDT inspection report {release.serial}",
        author="ndt-pacs",
        leftMargin=15 * mm,
        rightMargin=15 * mm,
        topMargin=15 * mm,
        bottomMargin=15 * mm,
    )
    header = release.images[0].header if release.images else {}
    evaluation = release.evaluation
    story: list[object] = [
        Paragraph("NDT inspection report", styles["Title"]),
        Table(
            [
                ["Component serial", release.serial],
                ["Component name", _first(header, "00100010").replace("^", " ")],
                ["Material", _first(header, "00102160")],
                ["Inspection", release.study_instance_uid],
                ["Inspection date", _first(header, "00080020")],
                ["Order / job", _first(header, "00080050")],
                ["Technique", f"{_first(header, '00080060')} {_first(header, '0008103E')}".strip()],
                ["Device", f"{_first(header, '00080070')} {_first(header, '00181000')}".strip()],
                ["Method", evaluation.method],
                ["Acceptance standard", f"{evaluation.standard_meaning} ({evaluation.standard})"],
                ["Overall disposition", evaluation.disposition],
                ["Status", release.status],
                ["Evaluation attempt", str(evaluation.attempt)],
                ["Repair ID", evaluation.repair_id or "-"],
                ["Re-inspection of", evaluation.reinspection_of or "-"],
                ["Comment", para(evaluation.comment or "-")],
            ],
            colWidths=[45 * mm, 135 * mm],
            style=TableStyle([("FONTSIZE", (0, 0), (-1, -1), 9), ("VALIGN", (0, 0), (-1, -1), "TOP")]),
        ),
        Spacer(1, 5 * mm),
        Paragraph("Indications", styles["Heading2"]),
    ]
    active = [i for i in release.indications if not i.withdrawn]
    rows: list[list[object]] = [["#", "Label", "Type", "Image / frame", "Length", "Width", "Area", "Disp.", "Ver."]]
    for i in active:
        rows.append(
            [
                str(i.number),
                para(i.label or ""),
                i.type,
                f"…{i.sop_instance_uid[-12:]} / {i.frame}",
                _size(i.sizes.length, i.sizes.unit),
                _size(i.sizes.width, i.sizes.unit),
                _size(i.sizes.area, i.sizes.unit + "²"),
                evaluation.indications.get(str(i.id), ""),
                str(i.version),
            ]
        )
    table = Table(rows, repeatRows=1)
    table.setStyle(
        TableStyle(
            [
                ("FONTSIZE", (0, 0), (-1, -1), 8),
                ("GRID", (0, 0), (-1, -1), 0.3, colors.grey),
                ("BACKGROUND", (0, 0), (-1, 0), colors.lightgrey),
            ]
        )
    )
    story += [table, Spacer(1, 5 * mm), Paragraph("Signatures", styles["Heading2"])]
    sig_rows: list[list[object]] = [["Meaning", "Printed name (user)", "UTC time", "Qualification", "Valid"]]
    for s in release.signatures:
        q = s.qualification
        sig_rows.append(
            [
                s.meaning,
                para(f"{s.printed_name} ({s.signer})"),
                s.signed_at.strftime("%Y-%m-%d %H:%M:%S"),
                para(
                    f"{q.get('method')} Level {q.get('level')}, cert {q.get('certificate')} "
                    f"({q.get('issuer') or '-'}), valid until {q.get('valid_until')}, "
                    f"vision test {q.get('vision_test')}"
                ),
                "yes" if s.valid else "INVALIDATED",
            ]
        )
    sig_table = Table(sig_rows, colWidths=[20 * mm, 40 * mm, 32 * mm, 70 * mm, 18 * mm])
    sig_table.setStyle(
        TableStyle(
            [
                ("FONTSIZE", (0, 0), (-1, -1), 8),
                ("GRID", (0, 0), (-1, -1), 0.3, colors.grey),
                ("BACKGROUND", (0, 0), (-1, 0), colors.lightgrey),
                ("VALIGN", (0, 0), (-1, -1), "TOP"),
            ]
        )
    )
    story += [sig_table, Spacer(1, 2 * mm)]
    digests = sorted({s.content_sha256 for s in release.signatures if s.valid})
    story.append(para(f"Signed content SHA-256: {', '.join(digests)}"))
    story.append(para(f"Report generated {now.strftime('%Y-%m-%d %H:%M:%S')} UTC by ndt-pacs."))
    marked = {i.sop_instance_uid for i in active}
    for image in release.images:
        if image.sop_instance_uid not in marked:
            continue
        on_image = [i for i in active if i.sop_instance_uid == image.sop_instance_uid]
        for frame in sorted({i.frame for i in on_image}):
            pixels = frames(image, frame)
            gray = Image.fromarray(to_8bit(pixels, image.header)).convert("RGB")
            scale = min(1.0, MAX_SIDE / max(gray.size))
            if scale < 1.0:
                gray = gray.resize((max(1, round(gray.width * scale)), max(1, round(gray.height * scale))))
            draw(gray, scale, [i for i in on_image if i.frame == frame], evaluation.indications)
            png = io.BytesIO()
            gray.save(png, format="PNG")
            png.seek(0)
            width = 180 * mm
            height = width * gray.height / gray.width
            if height > 200 * mm:
                height, width = 200 * mm, 200 * mm * gray.width / gray.height
            story += [
                Spacer(1, 5 * mm),
                Paragraph(escape(f"Image {image.sop_instance_uid}, frame {frame}"), styles["Heading3"]),
                PdfImage(png, width=width, height=height),
            ]
    doc.build(story)
    return buffer.getvalue()
