"""CPU cost of the index transaction alone (the DB part of a store), one by one and in batches.

Examines N Part 10 files up front (header parse, identity, index values: not measured), then
indexes them into a fresh archive (SQLite, or PostgreSQL with --database-url) through
``Archive.store_file``'s index step (``Database.run`` + ``IndexWriter.index`` on its connection) and, when the
tree has it, ``Archive.index_stored`` in batches. Reports CPU µs per instance
(``time.process_time``).

``--trees A B`` runs the measurement under each source tree in turn (PYTHONPATH), alternating
for ``--rounds`` rounds, so an old and a new tree are compared in one run on this noisy machine.
Usage: python bench/index_txn.py [--corpus DIR] [--count 500] [--batch 16] [--database-url URL]
       [--trees OLD NEW] [--rounds 3] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydicom.uid import CTImageStorage


def measure(corpus: Path, count: int, batch: int, database_url: str | None, profile: bool) -> None:
    from storage.archive import Archive, header_json
    from storage.audit import Actor
    from storage.dicom.files import read_received_file
    from storage.factory import open_archive
    from storage.ingest.index_writer import IndexValues, ReceivedObject, identity_of
    from storage.objects.keys import object_key
    from storage.settings import StorageSettings

    files = sorted(corpus.iterdir())[:count]
    examined: list[Any] = []
    for path in files:
        received = read_received_file(path)
        identity = identity_of(received.dataset)
        values = IndexValues.of(received.dataset)
        key = object_key(
            identity.study_instance_uid, identity.series_instance_uid, identity.sop_instance_uid, received.sha256
        )
        stored = ReceivedObject(
            key, received.sha256, received.size, received.transfer_syntax_uid, header_json(received.dataset)
        )
        examined.append((identity, values, stored))
    actor = Actor("BENCH", "127.0.0.1")

    def fresh(tmp: Path) -> tuple[Archive, Callable[[], None]]:
        if database_url is None:
            url = f"sqlite:///{tmp / 'index.sqlite'}"
            drop = lambda: None  # noqa: E731
        else:  # a schema of our own, like the tests' PostgreSQL fixture
            from sqlalchemy import create_engine, text
            from sqlalchemy.engine import make_url

            schema = f"bench_{uuid.uuid4().hex[:12]}"
            admin = create_engine(database_url, isolation_level="AUTOCOMMIT")
            with admin.connect() as conn:
                conn.execute(text(f'CREATE SCHEMA "{schema}"'))
            url = make_url(database_url).update_query_dict({"options": f"-csearch_path={schema}"})
            url = url.render_as_string(hide_password=False)

            def drop() -> None:
                with admin.connect() as conn:
                    conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
                admin.dispose()

        if database_url is not None:
            from storage.index import migrate
            from storage.index.db import Database

            db = Database(url)
            migrate.upgrade(db.engine)
            db.dispose()
        return open_archive(StorageSettings(data_dir=tmp, database_url=url)), drop  # type: ignore[arg-type]

    def index_one(arch: Archive, identity: Any, values: Any, stored: Any) -> None:
        """What ``Archive.store_file`` does after writing the object."""
        _result, known = arch.db.run(
            lambda uow: arch.index_writer.index(uow.connection, actor, identity, values, stored)
        )
        arch.indexer.remember(identity.series_instance_uid, known)

    def one_by_one(arch: Archive) -> None:
        for identity, values, stored in examined:
            index_one(arch, identity, values, stored)

    def batched(arch: Archive) -> None:
        from storage.ingest.index_writer import IndexItem

        items = [IndexItem(actor, *each) for each in examined]
        for start in range(0, len(items), batch):
            arch.index_stored(items[start : start + batch])

    modes = [("one by one", one_by_one)]
    if hasattr(Archive, "index_stored"):
        modes.append((f"batch {batch}", batched))
    for name, run in modes:
        with tempfile.TemporaryDirectory() as tmp:
            arch, drop = fresh(Path(tmp))
            first = examined.pop(0)
            index_one(arch, *first)  # warm up: compile statements, open connections
            profiler = cProfile.Profile(time.process_time) if profile else None  # CPU, not wall
            usage, cpu, wall = resource.getrusage(resource.RUSAGE_SELF), time.process_time(), time.perf_counter()
            if profiler:
                profiler.enable()
            run(arch)
            if profiler:
                profiler.disable()
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
            system = resource.getrusage(resource.RUSAGE_SELF).ru_stime - usage.ru_stime
            examined.insert(0, first)
            n = len(examined) - 1
            print(
                f"  {name:11s} cpu {cpu / n * 1e6:6.0f} µs (system {system / n * 1e6:4.0f})"
                f"  wall {wall / n * 1e6:6.0f} µs per instance",
                flush=True,
            )
            arch.db.dispose()
            drop()
            if profiler:
                pstats.Stats(profiler).sort_stats("tottime").print_stats(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--corpus", type=Path, help="a folder of Part 10 files (default: N generated 39 kB CTs)")
    parser.add_argument("--count", type=int, default=500)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--database-url", default=None, help="PostgreSQL URL (each run in a schema of its own)")
    parser.add_argument("--trees", nargs="*", type=Path, default=[])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--profile", action="store_true", help="print a cProfile of each measured run")
    args = parser.parse_args()
    generated = args.corpus is None
    if generated:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        import ingest

        args.corpus = Path(tempfile.mkdtemp(prefix="index-txn-corpus-"))
        ingest.make_corpus(args.corpus, args.count, 128, 128, CTImageStorage, "CT")  # one series, like a device run
    try:
        if not args.trees:
            measure(args.corpus, args.count, args.batch, args.database_url, args.profile)
            return
        own = [a for a in sys.argv[1:] if a not in {"--trees", *map(str, args.trees)}]
        own += ["--corpus", str(args.corpus)] if generated else []
        for _ in range(args.rounds):
            for tree in args.trees:
                print(f"{tree}:", flush=True)
                env = {**os.environ, "PYTHONPATH": str(tree.resolve())}
                subprocess.run([sys.executable, __file__, *own, "--rounds", "1"], env=env, check=True)
    finally:
        if generated:
            shutil.rmtree(args.corpus)


if __name__ == "__main__":
    main()
