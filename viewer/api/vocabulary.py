"""``/api/vocabulary``: the NDT names of DICOM attributes."""

from __future__ import annotations

from storage.dicom.diconde.vocabulary import vocabulary
from viewer.api.errors import ApiRoute
from viewer.auth import SecuredRouter, require

READ = "studies:read"
router = SecuredRouter(prefix="/api", tags=["api"], route_class=ApiRoute)


@router.get(
    "/vocabulary",
    dependencies=[require(READ)],
    summary="The NDT names of DICOM attributes (DICONDE)",
)
def get_vocabulary() -> list[dict[str, str]]:
    """Keyword, tag, NDT label and DICONDE module of every attribute with an NDT meaning."""
    return vocabulary()
