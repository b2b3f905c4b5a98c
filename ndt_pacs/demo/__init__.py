"""A realistic, deterministic, synthetic DICONDE demo data set (``pacs demo``; tests use it too).

``generate_demo(seed=0, count=6, scale=1.0)`` yields :class:`pydicom.dataset.Dataset` objects
ready to send or save: weld radiographs (DX, CR), a cast housing CT volume, UT C-scans
(US) and eddy-current images (601.1), some in the legacy 2010 private encoding.
"""

from __future__ import annotations

from ndt_pacs.demo.generator import DEMO_SOP_CLASSES, DemoComponent, components, generate_demo
from ndt_pacs.demo.iods import missing_attributes

__all__ = ["DEMO_SOP_CLASSES", "DemoComponent", "components", "generate_demo", "missing_attributes"]
