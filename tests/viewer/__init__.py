"""Tests of the HTTP door (viewer/): REST API, DICOMweb, rendering, the web viewer in real browsers."""
