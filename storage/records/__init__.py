"""The records room: what people and peers keep beside the originals, each change audited.

Annotations (measurements on an image), known DICOM peers, storage commitment
decisions, fixity runs — and accounts and who may do what (roles, NDT qualifications); later evaluations and signatures.
"""
