"""REST JSON API for the web viewer and for scripts (``/api/``), in NDT vocabulary.

One router per resource (:mod:`.components`, :mod:`.inspections`, :mod:`.images`,
:mod:`.annotations`, :mod:`.vocabulary`, :mod:`.indications`, :mod:`.evaluations`, :mod:`.quality`), one error
mapping (:mod:`.errors`) and one DICOM-JSON -> view mapper (:mod:`.views`). Every route declares its permission
(:func:`viewer.auth.require`); the core services come from :mod:`viewer.deps`.
"""

from __future__ import annotations

from fastapi import FastAPI

from viewer.api import audit, components, errors, evaluations, images, indications, inspections, quality, vocabulary
from viewer.api.annotations import router as annotations_router

# The audit router first: /components/{serial}/history must not be taken for a serial containing '/'.
ROUTERS = (
    audit.router,
    components.router,
    inspections.router,
    images.router,
    annotations_router,
    vocabulary.router,
    indications.router,
    evaluations.router,
    quality.router,
)


def install(app: FastAPI) -> None:
    """Add the REST API to *app*: its routers and its answer to bad parameters."""
    for router in ROUTERS:
        app.include_router(router)
    errors.install(app)
    quality.install_errors(app)
