"""Composition root: wires the archive core, the DICOM listener and the HTTP server (``pacs`` CLI)."""
