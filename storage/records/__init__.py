"""The records room: what people and peers keep beside the originals, each change audited.

Annotations (measurements on an image), known DICOM peers, storage commitment
decisions, fixity runs — and the homes of accounts, evaluations and signatures.
"""
