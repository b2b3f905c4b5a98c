"""CPU cost of the per-instance header steps of ingest, old tree against new tree in one run.

Runs, per file of a corpus (default: bench/ingest.py's 39 kB CT instances), the four steps of
``Archive.store_file`` before the index transaction: ``read_received_file``, ``_identity``,
``IndexValues.of`` and ``header_json``, each on the data set the step before produced (so
conversions cached by one step are not counted twice), timed with ``time.process_time``.
Each tree runs in its own interpreter (rounds alternate between trees); the report is the
median over rounds of the mean CPU microseconds per instance.
Usage: python bench/header_steps.py OLD_TREE NEW_TREE [--corpus DIR] [--count 500] [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

STEPS = ("read_received_file", "_identity", "IndexValues.of", "header_json")

_WORKER = r"""
import json, sys, time
from pathlib import Path
import storage
from storage import diconde
from storage.archive import _identity, header_json
from storage.dicomfile import read_received_file
from storage.indexing import IndexValues

diconde.register()
files = json.loads(sys.argv[1])
totals = [0.0, 0.0, 0.0, 0.0]
clock = time.process_time
for _ in range(2):  # warm-up pass first (page cache, imports, dictionaries), then the timed pass
    totals = [0.0, 0.0, 0.0, 0.0]
    for name in files:
        t0 = clock()
        received = read_received_file(Path(name))
        t1 = clock()
        _identity(received.dataset)
        t2 = clock()
        IndexValues.of(received.dataset)
        t3 = clock()
        header_json(received.dataset)
        t4 = clock()
        for i, d in enumerate((t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
            totals[i] += d
print(json.dumps([storage.__file__, *(t / len(files) * 1e6 for t in totals)]))
"""


def _corpus(count: int) -> Path:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from ingest import make_corpus  # type: ignore[import-not-found]
    from pydicom.uid import CTImageStorage

    folder = Path(tempfile.mkdtemp(prefix="header-steps-"))
    make_corpus(folder, count, 128, 128, CTImageStorage, "CT")
    return folder


def _run(tree: str, files: list[str]) -> list[float]:
    env = {**os.environ, "PYTHONPATH": tree}
    out = subprocess.run(  # cwd: `python -c` puts the working directory first on sys.path
        [sys.executable, "-c", _WORKER, json.dumps(files)],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    imported, *times = json.loads(out.stdout)
    assert imported.startswith(str(Path(tree).resolve())), f"{tree}: imported {imported}"
    return [float(v) for v in times]


def main() -> None:
    """Measure both trees and print a table of CPU microseconds per instance."""
    parser = argparse.ArgumentParser()
    parser.add_argument("old")
    parser.add_argument("new")
    parser.add_argument("--corpus", type=Path)
    parser.add_argument("--count", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    folder = args.corpus or _corpus(args.count)
    files = [str(p) for p in sorted(folder.iterdir())[: args.count]]
    results: dict[str, list[list[float]]] = {args.old: [], args.new: []}
    for _ in range(args.rounds):
        for tree in (args.old, args.new):
            results[tree].append(_run(tree, files))
    print(f"{len(files)} files, {args.rounds} rounds, CPU us per instance (median of rounds)")
    print(f"{'step':20s} {'old':>8s} {'new':>8s}")
    medians = {tree: [statistics.median(r[i] for r in rows) for i in range(4)] for tree, rows in results.items()}
    for i, step in enumerate(STEPS):
        print(f"{step:20s} {medians[args.old][i]:8.0f} {medians[args.new][i]:8.0f}")
    print(f"{'sum':20s} {sum(medians[args.old]):8.0f} {sum(medians[args.new]):8.0f}")


if __name__ == "__main__":
    main()
