"""multipart/related (RFC 2387, PS3.18 §8.6.1.2) read incrementally and written as a stream.

The reader takes the request body chunk by chunk and spools each part's body to
a file while it arrives; only a delimiter's length of bytes is held back, so a
1 GB part never sits in memory.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

MAX_HEADER_BYTES = 16 * 1024


class MultipartError(ValueError):
    """The body is not well-formed multipart (the caller answers 400)."""


@dataclass(frozen=True)
class Part:
    """One received part: its headers (names lower-cased) and the spooled body."""

    headers: dict[str, str]
    path: Path
    size: int

    @property
    def content_type(self) -> str | None:
        """The part's Content-Type header, if any."""
        return self.headers.get("content-type")


def _parse_headers(block: bytes) -> dict[str, str]:
    headers: dict[str, str] = {}
    for line in block.split(b"\r\n"):
        if not line.strip():
            continue
        name, sep, value = line.partition(b":")
        if not sep:
            raise MultipartError(f"malformed part header line {line[:80]!r}")
        headers[name.decode("latin-1").strip().lower()] = value.decode("latin-1").strip()
    return headers


async def iter_parts(chunks: AsyncIterator[bytes], boundary: str, spool_dir: Path) -> AsyncIterator[Part]:
    """Yield each part of the multipart body in *chunks*, spooled to a file under *spool_dir*.

    The part's file is removed when the consumer asks for the next part (unless it
    moved it away); the consumer handles one part at a time.
    """
    if not boundary or len(boundary) > 200:
        raise MultipartError("missing or invalid multipart boundary")
    delimiter = b"\r\n--" + boundary.encode("latin-1")
    keep = len(delimiter) + 4
    buf = bytearray(b"\r\n")  # the first delimiter may open the body without a CRLF
    state = "preamble"
    spool: Path | None = None
    fh = None
    size = 0
    headers: dict[str, str] = {}
    finished = False
    try:
        exhausted = False
        while not finished:
            progressed = True
            while progressed and not finished:
                progressed = False
                if state == "preamble":
                    idx = buf.find(delimiter)
                    if idx >= 0:
                        del buf[: idx + len(delimiter)]
                        state, progressed = "after_delimiter", True
                    elif len(buf) > keep:
                        del buf[: len(buf) - keep]
                elif state == "after_delimiter":
                    if len(buf) >= 2 and buf[:2] == b"--":
                        finished = True
                        break
                    eol = buf.find(b"\r\n")
                    if eol >= 0:
                        if buf[:eol].strip(b" \t"):
                            raise MultipartError("unexpected data after a boundary delimiter")
                        del buf[: eol + 2]
                        state, progressed = "headers", True
                    elif len(buf) > 1024:
                        raise MultipartError("boundary delimiter line too long")
                elif state == "headers":
                    if buf[:2] == b"\r\n":
                        block, rest = b"", 2
                    else:
                        end = buf.find(b"\r\n\r\n")
                        block, rest = (bytes(buf[:end]), end + 4) if end >= 0 else (b"", -1)
                    if rest < 0:
                        if len(buf) > MAX_HEADER_BYTES:
                            raise MultipartError("part headers too long")
                        continue
                    headers = _parse_headers(block)
                    del buf[:rest]
                    fd, name = tempfile.mkstemp(dir=spool_dir, prefix="stow-", suffix=".part")
                    spool, fh, size = Path(name), os.fdopen(fd, "wb"), 0
                    state, progressed = "body", True
                elif state == "body":
                    assert fh is not None
                    assert spool is not None
                    idx = buf.find(delimiter)
                    if idx >= 0:
                        fh.write(buf[:idx])
                        size += idx
                        fh.close()
                        fh = None
                        del buf[: idx + len(delimiter)]
                        yield Part(headers=headers, path=spool, size=size)
                        with contextlib.suppress(FileNotFoundError):
                            spool.unlink()
                        spool = None
                        state, progressed = "after_delimiter", True
                    elif len(buf) > keep:
                        cut = len(buf) - keep
                        fh.write(buf[:cut])
                        size += cut
                        del buf[:cut]
            if finished:
                break
            if exhausted:
                raise MultipartError("multipart body ended before its closing delimiter")
            try:
                chunk = await anext(chunks)
                buf += chunk
            except StopAsyncIteration:
                exhausted = True
    finally:
        if fh is not None:
            fh.close()
        if spool is not None:
            with contextlib.suppress(FileNotFoundError):
                spool.unlink()


def new_boundary() -> str:
    """A fresh multipart boundary."""
    return uuid.uuid4().hex


def write_parts(parts: Iterable[tuple[dict[str, str], Iterable[bytes]]], boundary: str) -> Iterator[bytes]:
    """Stream a multipart/related body: each part's headers, then its body chunks."""
    for headers, body in parts:
        head = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        yield f"--{boundary}\r\n{head}\r\n".encode("latin-1")
        yield from body
        yield b"\r\n"
    yield f"--{boundary}--\r\n".encode("latin-1")
