"""Helpers for driving the web viewer in Chromium (Playwright): launch, screenshots, canvas reading."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@contextmanager
def chromium() -> Iterator[Any]:
    """Debian's Chromium under Playwright (never a downloaded browser build)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def login(page: Any, name: str, password: str) -> None:
    """Log in through the viewer's login page; returns once the viewer shows who is signed in."""
    page.goto("/login")
    page.fill("#username", name)
    page.fill("#password", password)
    page.click("form#login button[type=submit]")
    page.wait_for_selector("#user .who-name")


def shot(page: Any, name: str) -> None:
    """Save a screenshot of *page* as test-artifacts/<name>.png."""
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"))


# Grey pixels of the view canvas, classified by level: centroids (client coordinates) of the
# white (>= 250), medium (140..180) and image (>= 30: everything but the black stage) pixels,
# and the bounding box of the image pixels. Coloured pixels (annotations) are ignored.
_CLASSIFY = """() => {
  const c = document.querySelector('canvas.view');
  const r = c.getBoundingClientRect();
  const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  const acc = { white: [0, 0, 0], medium: [0, 0, 0], image: [0, 0, 0] };
  let x0 = Infinity, y0 = Infinity, x1 = -Infinity, y1 = -Infinity;
  for (let y = 0; y < c.height; y++) for (let x = 0; x < c.width; x++) {
    const i = (y * c.width + x) * 4, g = d[i];
    if (Math.abs(g - d[i + 1]) > 2 || Math.abs(g - d[i + 2]) > 2) continue;
    const add = (k) => { acc[k][0] += x; acc[k][1] += y; acc[k][2]++; };
    if (g >= 250) add('white'); else if (g >= 140 && g <= 180) add('medium');
    if (g < 30) continue;
    add('image');
    x0 = Math.min(x0, x); y0 = Math.min(y0, y); x1 = Math.max(x1, x); y1 = Math.max(y1, y);
  }
  const out = { box: { left: r.left + x0, top: r.top + y0, right: r.left + x1 + 1, bottom: r.top + y1 + 1 } };
  for (const [k, [sx, sy, n]] of Object.entries(acc))
    out[k] = n ? { x: r.left + sx / n + 0.5, y: r.top + sy / n + 0.5, n } : null;
  return out;
}"""


def classify(page: Any) -> dict[str, Any]:
    """Where the white, medium and image pixels are on the view canvas (see _CLASSIFY)."""
    result: dict[str, Any] = page.evaluate(_CLASSIFY)
    return result


def grey_at(page: Any, x: float, y: float) -> int:
    """Grey level (red channel) of the view canvas at client point (x, y)."""
    value: int = page.evaluate(
        """([x, y]) => { const c = document.querySelector('canvas.view'); const r = c.getBoundingClientRect();
        return c.getContext('2d').getImageData(Math.floor(x - r.left), Math.floor(y - r.top), 1, 1).data[0]; }""",
        [x, y],
    )
    return value


def image_to_client(page: Any, x: float, y: float) -> tuple[float, float]:
    """Client coordinates of image point (x, y) (full-resolution pixels, the viewer's own transform)."""
    p = page.evaluate("([x, y]) => window.viewer.imageToClient(x, y)", [x, y])
    return float(p["x"]), float(p["y"])


def drag(page: Any, a: tuple[float, float], b: tuple[float, float], steps: int = 8) -> None:
    """Press at client point *a*, move to *b*, release."""
    page.mouse.move(*a)
    page.mouse.down()
    page.mouse.move(*b, steps=steps)
    page.mouse.up()


def click(page: Any, a: tuple[float, float]) -> None:
    page.mouse.move(*a, steps=2)
    page.mouse.down()
    page.mouse.up()
