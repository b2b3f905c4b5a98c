"""HTTP front door: DICOMweb, the REST API and the web viewer (FastAPI), over the archive core."""
