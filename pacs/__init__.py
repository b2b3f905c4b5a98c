"""DICOM networking (DIMSE over pynetdicom): a thin adapter onto the archive core."""
