"""The DICOM room: what the archive knows about DICOM *files*, without SQL or object storage.

Reading a received PS3.10 file (:mod:`.files`), pydicom's header values minus its
per-access overhead (:mod:`.header`), UID validation (:mod:`.uids`), pixel calibration
(:mod:`.spacing`) and the DICONDE additions (:mod:`.diconde`). The lowest room: it
imports no other room of ``storage``.
"""
