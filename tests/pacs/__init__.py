"""Tests of the DICOM door (pacs/): real associations with pynetdicom and dcmtk."""
