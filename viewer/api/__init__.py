"""REST JSON API for the web viewer and for scripts (``/api/``), in NDT vocabulary."""
