"""Fuzzing the header reader and admission with mutated pydicom test files (issue 18, the fuzzing harness).

Each example takes a real file (pydicom's test files: explicit and implicit VR, big endian,
deflated, encapsulated, sequences, private and UN sequences, truncated ones) and mutates
it: bytes flipped, a length field set to a hostile value, bytes inserted, cut or repeated.
The file then goes where received bytes go: :func:`examine_for_admission` (the receiver's
checks before the answer), :func:`read_received_file` (the header reader the indexer and
STOW use) and :meth:`Archive.store_file` (the whole synchronous ingest). Every case must be
refused cleanly (:class:`InvalidInstance`) or stored correctly (its bytes served back
exactly); no other exception, no hang (the test's timeout) and no allocation beyond a
bound (``tracemalloc``'s peak, far below what an announced length could make us take).

A short run is part of the normal suite (``PACS_FUZZ_EXAMPLES``, default 200, derandomised
so that CI is repeatable). A long run, random and as many examples as you like::

    PACS_FUZZ_EXAMPLES=20000 PYTHONPATH=$PWD python3 -m pytest tests/storage/test_fuzz_admission.py -q \\
        -p no:cacheprovider --timeout 0
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import struct
import tempfile
import tracemalloc
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydicom.data import get_testdata_file

from storage.archive import Archive
from storage.audit import Actor
from storage.dicom.files import read_received_file
from storage.errors import InvalidInstance
from storage.factory import open_archive
from storage.ingest.admission import examine_for_admission
from storage.objects import read_bytes
from tests.support.factories import make_instance, write_part10
from tests.support.servers import make_settings

EXAMPLES = int(os.environ.get("PACS_FUZZ_EXAMPLES", "200"))
LONG_RUN = "PACS_FUZZ_EXAMPLES" in os.environ
MIB = 1 << 20
# Parsing a file of a few kB may take a few MB (pydicom's objects); an announced length of 4 GiB
# honoured would take gigabytes. Anything above this bound is an allocation driven by the input.
ALLOCATION_BOUND = 48 * MIB

SEEDS = [
    "MR_small.dcm",  # explicit VR little endian
    "MR_small_implicit.dcm",
    "MR_small_bigendian.dcm",
    "image_dfl.dcm",  # deflated
    "JPEG2000.dcm",  # encapsulated pixel data
    "rtplan.dcm",  # nested sequences
    "nested_priv_SQ.dcm",
    "UN_sequence.dcm",
    "rtplan_truncated.dcm",
    "reportsi.dcm",
    "SC_rgb_rle.dcm",
]
ACTOR = Actor("FUZZER", "127.0.0.1:1")
HOSTILE_LENGTHS = [0, 1, 2, 0xFFFF, 0x7FFFFFFF, 0xFFFFFFFE, 0xFFFFFFFF, 0x10000000]


@functools.cache
def _seeds() -> tuple[bytes, ...]:
    """The seed files' bytes (module level, not a fixture: a failing example's report stays short)."""
    seeds = []
    for name in SEEDS:
        found = get_testdata_file(name)
        if found is not None:
            seeds.append(Path(str(found)).read_bytes())
    with tempfile.TemporaryDirectory() as tmp:
        seeds.append(write_part10(make_instance(rows=16, columns=16), Path(tmp) / "ours.dcm").read_bytes())
    assert len(seeds) >= 8, "pydicom's test files are missing (pydicom-data)"
    return tuple(seeds)


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Archive]:
    data = tmp_path_factory.mktemp("fuzz") / "data"
    opened = open_archive(make_settings(data))
    yield opened
    opened.db.dispose()


_mutation = st.one_of(
    st.tuples(st.just("flip"), st.integers(0, 1 << 20), st.integers(1, 255)),
    st.tuples(st.just("length"), st.integers(0, 1 << 20), st.sampled_from(HOSTILE_LENGTHS)),
    st.tuples(st.just("length16"), st.integers(0, 1 << 20), st.sampled_from([0, 1, 0xFFFF, 0xFFFE])),
    st.tuples(st.just("cut"), st.integers(0, 1 << 20), st.just(0)),
    st.tuples(st.just("insert"), st.integers(0, 1 << 20), st.integers(0, 255)),
    st.tuples(st.just("repeat"), st.integers(0, 1 << 20), st.integers(1, 512)),
)


def _mutate(data: bytes, mutations: list[tuple[str, int, int]]) -> bytes:
    buf = bytearray(data)
    for kind, where, value in mutations:
        if not buf:
            break
        pos = where % len(buf)
        if kind == "flip":
            buf[pos] ^= value
        elif kind == "length" and pos + 4 <= len(buf):
            buf[pos : pos + 4] = struct.pack("<I", value)
        elif kind == "length16" and pos + 2 <= len(buf):
            buf[pos : pos + 2] = struct.pack("<H", value)
        elif kind == "cut":
            del buf[max(pos, 1) :]
        elif kind == "insert":
            buf[pos:pos] = bytes([value]) * 4
        elif kind == "repeat":
            buf[pos:pos] = buf[pos : pos + value]
    return bytes(buf)


def _bounded(work: object) -> object:
    """Run *work* (a callable) and assert its peak Python allocation stays under the bound."""
    tracemalloc.start()
    try:
        result = work()  # type: ignore[operator]
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < ALLOCATION_BOUND, f"allocated {peak} bytes for a small file"
    return result


@settings(
    max_examples=EXAMPLES,
    deadline=None,  # no wall-clock assertion: hangs are the test timeout's business
    derandomize=not LONG_RUN,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    seed=st.integers(0, 1000),
    mutations=st.lists(_mutation, min_size=1, max_size=4),
    store=st.booleans(),
)
def test_mutated_files_are_refused_cleanly_or_stored_exactly(
    archive: Archive, tmp_path: Path, seed: int, mutations: list[tuple[str, int, int]], store: bool
) -> None:
    seeds = _seeds()
    data = _mutate(seeds[seed % len(seeds)], mutations)
    path = tmp_path / "fuzzed.dcm"
    path.write_bytes(data)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom warns about much of what it reads here
        for check in (examine_for_admission, read_received_file):
            with contextlib.suppress(InvalidInstance):
                _bounded(lambda check=check: check(path))
        if not store:
            return
        copy = tmp_path / "stored.dcm"
        shutil.copyfile(path, copy)
        try:
            result = _bounded(lambda: archive.store_file(copy, ACTOR))
        except InvalidInstance:
            return
    stored = read_bytes(archive.objects, result.object_key)  # type: ignore[attr-defined]
    assert stored == data  # stored correctly: byte for byte what was received
