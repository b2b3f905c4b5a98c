"""One progress bar for the bulk commands (import, push, demo): files, MB, rate, ETA.

Drawn on standard error and only when it is a terminal, so scripts and logs see the summary alone.
The bar, the rate and the ETA follow the bytes (a 500 MB CT volume weighs more than a 1 kB report).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)


class Bar:
    """The running bar: :meth:`advance` after each file."""

    def __init__(self, progress: Progress, task: TaskID, files: int) -> None:
        self._progress, self._task, self._files, self.done = progress, task, files, 0

    def advance(self, size: int) -> None:
        """One more file of *size* bytes done."""
        self.done += 1
        self._progress.update(self._task, advance=size, files=f"{self.done}/{self._files} files")


@contextmanager
def progress_bar(label: str, files: int, total_bytes: int, *, enabled: bool | None = None) -> Iterator[Bar]:
    """A bar over *files* files of *total_bytes* bytes; drawn when standard error is a terminal."""
    show = sys.stderr.isatty() if enabled is None else enabled
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[files]}"),
        DownloadColumn(binary_units=False),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        disable=not show,
    )
    with progress:
        task = progress.add_task(label, total=max(total_bytes, 1), files=f"0/{files} files")
        yield Bar(progress, task, files)
