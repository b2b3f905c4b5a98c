"""Tests of the whole system: `pacs serve`, deployment files, the demo, production backends, the architecture."""
