"""Helpers shared by the tests: servers, DICOM clients, data factories, browsers."""
