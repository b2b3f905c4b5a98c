"""Window/level latency of the web viewer on a 3000x3000 16-bit radiograph, in headless Chromium.

Stores a synthetic 3000x3000 16-bit DX into a fresh embedded archive, starts `pacs serve` on it,
opens the image in Debian's Chromium (Playwright), waits for the full-resolution frame, then drags
window/level N times (one pointer move per update, each waited for) and prints, per update:

- ``render``: the viewer's synchronous ``render()`` (lookup table, pixel mapping, putImageData,
  drawImage onto the view), timed with ``performance.now()`` in the page;
- ``render+flush``: the same plus a one-pixel read-back of the view canvas, which forces the
  browser to execute the deferred drawing (the scaled drawImage) inside the measurement;
- ``event->drawn``: from the pointermove event to the end of that render+flush, including the wait
  for the animation frame the viewer renders in (the screen shows it at its next refresh).

Measured at the fitted zoom (the whole image on the screen) and at 1:1 zoom (``--zoom 1``).

The target (issue 7) is < 50 ms per update. Also prints the open time of the image (first frame
request to data-loaded="full"). Usage: python bench/viewer_window_level.py [--updates 50] [--size 3000] [--zoom Z]
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import DigitalXRayImageStorageForPresentation, ExplicitVRLittleEndian, generate_uid

from storage.audit import Actor
from storage.factory import open_archive
from storage.settings import StorageSettings

CHROMIUM = "/usr/bin/chromium"

# Wraps Viewer.render and listens to pointermove: one record per update.
INSTRUMENT = """() => {
  const v = window.viewer;
  const rec = (window.__wl = { renders: [], flushed: [], latencies: [], lastEvent: 0 });
  const view = v.canvas.getContext("2d");
  v.canvas.addEventListener("pointermove", (e) => { rec.lastEvent = e.timeStamp; }, { capture: true });
  const render = v.render.bind(v);
  v.render = () => {
    const t0 = performance.now();
    render();
    const t1 = performance.now();
    view.getImageData(0, 0, 1, 1); // forces the canvas's deferred drawing to run now
    const t2 = performance.now();
    rec.renders.push(t1 - t0);
    rec.flushed.push(t2 - t0);
    rec.latencies.push(t2 - rec.lastEvent);
  };
}"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def radiograph(size: int) -> Dataset:
    """A size x size 16-bit DX: a weld-like band, a ramp and noise over the full 16-bit range."""
    rng = np.random.default_rng(7)
    y, x = np.mgrid[0:size, 0:size]
    image = 6000 + 40000 * (x / size) + 4000 * np.sin(y / 35.0) + rng.normal(0, 300, (size, size))
    band = slice(size // 2 - size // 40, size // 2 + size // 40)
    image[band, :] += 9000
    pixels = np.clip(image, 0, 65535).astype(np.uint16)
    ds = Dataset()
    ds.SOPClassUID, ds.SOPInstanceUID = DigitalXRayImageStorageForPresentation, generate_uid()
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.PatientID, ds.PatientName, ds.Modality = "BENCH-WL", "Bench^Radiograph", "DX"
    ds.StudyDate, ds.SeriesNumber, ds.InstanceNumber = "20260101", 1, 1
    ds.Rows, ds.Columns, ds.SamplesPerPixel = size, size, 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.ImagerPixelSpacing = [0.1, 0.1]
    ds.WindowCenter, ds.WindowWidth = 30000, 40000
    ds.PixelData = pixels.tobytes()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    return ds


def start_server(data_dir: Path) -> tuple[subprocess.Popen[bytes], str]:
    http_port = free_port()
    cmd = [sys.executable, "-m", "ndt_pacs", "serve", "--data-dir", str(data_dir), "--host", "127.0.0.1"]
    cmd += ["--dicom-port", str(free_port()), "--http-port", str(http_port)]
    log = (data_dir.parent / "serve.log").open("wb")
    process = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env={**os.environ})
    url = f"http://127.0.0.1:{http_port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=2):
                return process, url
        except OSError:
            time.sleep(0.2)
    process.kill()
    raise RuntimeError("pacs serve did not start")


def summary(name: str, values: list[float]) -> str:
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return (
        f"{name:>13}: n={len(values)}  p50 {statistics.median(values):6.1f} ms  p95 {p95:6.1f} ms  "
        f"max {ordered[-1]:6.1f} ms"
    )


def run(updates: int, size: int, zoom: float | None) -> None:
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="bench-wl-") as tmp:
        root = Path(tmp)
        data_dir = root / "pacs-data"
        archive = open_archive(StorageSettings(data_dir=data_dir))  # type: ignore[call-arg]
        ds = radiograph(size)
        path = root / "dx.dcm"
        ds.save_as(path, enforce_file_format=True)
        archive.store_file(path, Actor(name="bench", kind="system"), move=True)
        archive.db.dispose()
        process, url = start_server(data_dir)
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=["--headless", "--no-sandbox"])
                # bypass_csp: Playwright's wait_for_function polls with eval, which the viewer's CSP forbids
                page = browser.new_page(viewport={"width": 1366, "height": 768}, bypass_csp=True)
                t0 = time.perf_counter()
                page.goto(f"{url}/#/image/{ds.StudyInstanceUID}/{ds.SeriesInstanceUID}/{ds.SOPInstanceUID}")
                page.wait_for_selector(".viewer-root[data-loaded='full']", timeout=120_000)
                opened = time.perf_counter() - t0
                if zoom:
                    page.evaluate(f"() => {{ window.viewer.view.zoom = {zoom}; window.viewer.draw(); }}")
                page.evaluate(INSTRUMENT)
                box = page.locator("canvas.view").bounding_box()
                assert box is not None
                cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
                page.mouse.move(cx, cy)
                page.mouse.down()
                for k in range(1, updates + 1):
                    dx = 3 * k if k % 2 else -2 * k
                    page.mouse.move(cx + dx, cy + (k % 7) * 4)
                    page.wait_for_function(f"window.__wl.latencies.length >= {k}")
                page.mouse.up()
                result = page.evaluate("() => window.__wl")
                canvas = page.evaluate(
                    "() => [window.viewer.canvas.width, window.viewer.canvas.height, window.viewer.view.zoom]"
                )
                browser.close()
        finally:
            process.terminate()
            process.wait(30)
    print(
        f"{size}x{size} 16-bit DX, view canvas {canvas[0]}x{canvas[1]}, zoom {canvas[2]:.3f}, "
        f"{updates} window/level updates"
    )
    print(f"open (navigation to full resolution shown): {opened * 1000:.0f} ms")
    print(summary("render", result["renders"]))
    print(summary("render+flush", result["flushed"]))
    print(summary("event->drawn", result["latencies"]))
    print("target: < 50 ms per update")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--updates", type=int, default=50)
    parser.add_argument("--size", type=int, default=3000)
    parser.add_argument("--zoom", type=float, default=None, help="view zoom (default: fitted to the window)")
    args = parser.parse_args()
    run(args.updates, args.size, args.zoom)


if __name__ == "__main__":
    main()
