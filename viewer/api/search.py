"""The search criteria shared by the component and the inspection search (query parameters)."""

from __future__ import annotations

import dataclasses
from typing import Annotated

from fastapi import Depends, Query

from storage.index.catalog import MAX_PAGE, Search, SearchLevel

Text = Annotated[str, Query(max_length=64)]
Limit = Annotated[int, Query(ge=1, le=MAX_PAGE, description=f"Page size, 1..{MAX_PAGE}")]
Offset = Annotated[int, Query(ge=0, le=10_000_000)]
Order = Annotated[str, Query(pattern="^(asc|desc)$")]
Date = Annotated[str, Query(alias="from", pattern=r"^(\d{8})?$", description="Earliest inspection date, YYYYMMDD")]
DateTo = Annotated[str, Query(alias="to", pattern=r"^(\d{8})?$", description="Latest inspection date, YYYYMMDD")]


@dataclasses.dataclass
class SearchFilters:
    """The criteria shared by the component and the inspection search (query parameters)."""

    serial: Text = ""
    name: Text = ""
    material: Text = ""
    welder: Text = ""
    company: Text = ""
    modality: Annotated[str, Query(max_length=16, pattern=r"^[A-Za-z0-9_]*$")] = ""
    date_from: Date = ""
    date_to: DateTo = ""
    q: Annotated[str, Query(max_length=200, description="Free text over all fields")] = ""
    status: Annotated[
        str, Query(pattern=r"^(received|evaluated|approved|rejected|on-hold)?$", description="Evaluation status")
    ] = ""

    def search(self, level: SearchLevel, *, sort: str, order: str, limit: int, offset: int) -> Search:
        """The catalog search these filters ask for."""
        return Search(
            level=level,
            serial=self.serial,
            name=self.name,
            material=self.material,
            welder=self.welder,
            company=self.company,
            modality=self.modality,
            date_from=self.date_from,
            date_to=self.date_to,
            text=self.q,
            status=self.status,
            sort=sort,
            descending=order == "desc",
            limit=limit,
            offset=offset,
        )


Filters = Annotated[SearchFilters, Depends()]


def criteria(search: Search) -> dict[str, object]:
    """The criteria actually given (for the audit entry)."""
    return {k: v for k, v in vars(search).items() if v not in ("", False) and k not in ("level",)}
