"""Tests of the archive core (storage/): ingest, index, objects, audit, records."""
