"""DICOM files, no SQL."""
