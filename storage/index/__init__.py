"""The index room: the SQL index and everything that reads it.

The database and its unit of work (:mod:`.db`), the typed models (:mod:`.models`) and
their migrations, the prepared statements of the ingest hot path (:mod:`.prepared`),
the indexed attributes (:mod:`.attributes`), the one DICOM query model
(:mod:`.query`, PS3.4 C.2.2.2), the browsing read model (:mod:`.catalog`), the
repository lookups shared by every reader (:mod:`.instances`), and which stored
objects make up a study, series or instance (:mod:`.retrieve`).
"""
