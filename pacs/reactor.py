"""Event-driven idle waits for pynetdicom's polling reactors (pynetdicom 3, pinned < 4).

pynetdicom runs two polling loops per association. The association reactor sleeps
1 ms between looks at its DIMSE message queue; the DUL reactor sleeps 1 ms whenever
a pass found nothing to do. Every C-STORE waits on both loops, once for the request
and once for the response, which measured on this machine as about 1.5 ms of idle
latency per instance: as much as storing a small instance costs.

:func:`install` gives those two pynetdicom modules a ``time`` whose idle sleep
returns as soon as there is work. The association reactor waits on its DIMSE
message queue's condition (woken by the DUL the moment a message is complete). The
DUL reactor waits for its socket to turn readable and looks for a primitive to send
every 100 µs; after 100 ms without traffic it falls back to 1 ms steps, so an idle
association costs no more than it did. Nothing else in pynetdicom changes.
"""

from __future__ import annotations

import queue
import select
import threading
import time
from types import ModuleType
from typing import Any

from pynetdicom import association, dul

_REACTOR_SLEEP = 0.001  # the idle sleep of Association._run_reactor and DULServiceProvider
_STEP = 0.0001  # how often the DUL looks for a primitive to send while traffic flows
_BUSY_WINDOW = 0.1  # seconds after the last wake-up with work that count as traffic


class _ReactorClock:
    """Stands in for :mod:`time` inside pynetdicom's association and DUL modules."""

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)

    @staticmethod
    def sleep(seconds: float) -> None:
        """The reactors' idle sleep ends early when there is work; every other sleep is real."""
        thread = threading.current_thread()
        if isinstance(thread, association.Association) and seconds == _REACTOR_SLEEP:
            _wait_for_message(thread, seconds)
        elif isinstance(thread, dul.DULServiceProvider):
            _wait_for_traffic(thread, seconds)
        else:
            time.sleep(seconds)


def _wait_for_message(assoc: association.Association, seconds: float) -> None:
    messages = getattr(assoc.dimse, "msg_queue", None)
    if not isinstance(messages, queue.Queue):
        time.sleep(seconds)
        return
    with messages.not_empty:  # the queue's own lock: `put` notifies this condition
        if not messages.queue:
            messages.not_empty.wait(seconds)


def _wait_for_traffic(provider: dul.DULServiceProvider, seconds: float) -> None:
    wrapped = getattr(provider, "socket", None)
    sock = getattr(wrapped, "socket", None)
    if sock is None:
        time.sleep(seconds)
        return
    now = time.monotonic()
    last_work: float = getattr(provider, "_pacs_last_work", 0.0)
    step = _STEP if now - last_work < _BUSY_WINDOW else seconds
    deadline = now + seconds
    outgoing = provider.to_provider_queue
    while True:
        if outgoing.queue:
            break
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return
        try:
            readable, _, _ = select.select([sock], [], [], min(step, remaining))
        except (OSError, ValueError):  # socket closed under us: sleep, then let the reactor notice
            time.sleep(seconds)
            return
        if readable:
            break
    provider._pacs_last_work = time.monotonic()  # type: ignore[attr-defined]


def install() -> None:
    """Give pynetdicom's association and DUL modules the event-driven clock (idempotent)."""
    clock = _ReactorClock()
    for module in (association, dul):
        current = module.time
        if isinstance(current, ModuleType):
            module.time = clock  # type: ignore[attr-defined]
