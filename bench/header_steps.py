"""CPU cost of the per-instance header steps of ingest, an old tree against a new one, interleaved.

Runs, per file of a corpus (default: bench/ingest.py's 39 kB CT instances), the four steps of
``Archive.store_file`` before the object write: ``read_received_file``, ``_identity``,
``IndexValues.of`` and ``header_json``, each on the data set the step before produced (so
conversions cached by one step are not counted twice), timed with ``time.process_time``.
Both trees run in one process (the old tree's ``storage`` package is copied as ``storage_old``),
file by file in alternating order, so load from other processes on a shared machine hits both
alike. Prints the mean CPU microseconds per instance and step over all passes.
Usage: python bench/header_steps.py OLD_TREE NEW_TREE [--corpus DIR] [--count 500] [--passes 5]
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path
from types import ModuleType
from typing import Any

STEPS = ("read_received_file", "_identity", "IndexValues.of", "header_json")


def _corpus(count: int) -> Path:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from ingest import make_corpus  # type: ignore[import-not-found]
    from pydicom.uid import CTImageStorage

    folder = Path(tempfile.mkdtemp(prefix="header-steps-"))
    make_corpus(folder, count, 128, 128, CTImageStorage, "CT")
    return folder


def _import_trees(old: Path, new: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """The four steps of each tree: *old* as package ``storage_old``, *new* as ``storage``."""
    copy = Path(tempfile.mkdtemp(prefix="header-steps-old-")) / "storage_old"
    shutil.copytree(old / "storage", copy)
    for source in copy.rglob("*.py"):
        text = re.sub(r"\bstorage(?=[. ])", "storage_old", source.read_text())
        source.write_text(text)
    sys.path[:0] = [str(new), str(copy.parent)]
    steps = []
    for package in ("storage_old", "storage"):
        modules: dict[str, ModuleType] = {}
        for name in ("diconde", "archive", "dicomfile", "indexing"):
            modules[name] = __import__(f"{package}.{name}", fromlist=["_"])
        assert Path(modules["archive"].__file__ or "").is_relative_to(copy if package == "storage_old" else new)
        modules["diconde"].register()
        steps.append(
            {
                "read": modules["dicomfile"].read_received_file,
                "identity": modules["archive"]._identity,
                "index": modules["indexing"].IndexValues.of,
                "json": modules["archive"].header_json,
            }
        )
    return steps[0], steps[1]


def _run(steps: dict[str, Any], path: Path, totals: list[float]) -> None:
    clock = time.process_time
    t0 = clock()
    received = steps["read"](path)
    t1 = clock()
    steps["identity"](received.dataset)
    t2 = clock()
    steps["index"](received.dataset)
    t3 = clock()
    steps["json"](received.dataset)
    t4 = clock()
    for i, d in enumerate((t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
        totals[i] += d


def main() -> None:
    """Measure both trees and print a table of CPU microseconds per instance."""
    parser = argparse.ArgumentParser()
    parser.add_argument("old", type=Path)
    parser.add_argument("new", type=Path)
    parser.add_argument("--corpus", type=Path)
    parser.add_argument("--count", type=int, default=500)
    parser.add_argument("--passes", type=int, default=5)
    args = parser.parse_args()
    folder = args.corpus or _corpus(args.count)
    files = sorted(folder.iterdir())[: args.count]
    old, new = _import_trees(args.old.resolve(), args.new.resolve())
    warnings.simplefilter("ignore")
    for path in files[:50]:  # warm-up: page cache, dictionaries, caches
        _run(old, path, [0.0] * 4)
        _run(new, path, [0.0] * 4)
    totals = {"old": [0.0] * 4, "new": [0.0] * 4}
    for n in range(args.passes):
        for i, path in enumerate(files):
            first, second = ("old", "new") if (i + n) % 2 == 0 else ("new", "old")
            _run(old if first == "old" else new, path, totals[first])
            _run(old if second == "old" else new, path, totals[second])
    runs = len(files) * args.passes
    print(f"{len(files)} files x {args.passes} passes, interleaved; mean CPU us per instance")
    print(f"{'step':20s} {'old':>8s} {'new':>8s}")
    for i, step in enumerate(STEPS):
        print(f"{step:20s} {totals['old'][i] / runs * 1e6:8.0f} {totals['new'][i] / runs * 1e6:8.0f}")
    print(f"{'sum':20s} {sum(totals['old']) / runs * 1e6:8.0f} {sum(totals['new']) / runs * 1e6:8.0f}")


if __name__ == "__main__":
    main()
