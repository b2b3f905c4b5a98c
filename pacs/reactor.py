"""Event-driven idle waits for pynetdicom's polling reactors (pynetdicom 3, pinned < 4).

pynetdicom runs two polling loops per association. The association reactor sleeps
1 ms between looks at its DIMSE message queue; the DUL reactor sleeps 1 ms whenever
a pass found nothing to do. Every C-STORE waits on both loops, once for the request
and once for the response, which measured on this machine as about 1.5 ms of idle
latency per instance: as much as storing a small instance costs.

:func:`install` gives those two pynetdicom modules a ``time`` whose idle sleep
returns as soon as there is work, without polling faster (a busy-polling thread
would fight the C-STORE handler for the GIL). The association reactor waits on its
DIMSE message queue's condition, which the DUL notifies the moment a message is
complete. The DUL reactor waits in ``select`` on its socket and on a pipe that its
outgoing queue rings on every put. An idle association reactor wakes every 50 ms
(pynetdicom: every 1 ms); nothing else in pynetdicom changes.
"""

from __future__ import annotations

import contextlib
import os
import queue
import select
import sys
import threading
import time
import weakref
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from pynetdicom import association, dul

_REACTOR_SLEEP = 0.001  # the idle sleep of Association._run_reactor and DULServiceProvider
# How long an idle association reactor sleeps when nothing wakes it. Everything it reacts to
# wakes it at once (a DIMSE message, a release or abort indication from the DUL, a send_* from
# another thread); only the DUL thread's death and the network idle timer are noticed late,
# by at most this much. Waking every 1 ms instead cost ~15% of C-STORE throughput: each wake
# takes the GIL from the thread storing the instance.
_IDLE_WAIT = 0.05


class _ReactorClock:
    """Stands in for :mod:`time` inside pynetdicom's association and DUL modules."""

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)

    @staticmethod
    def sleep(seconds: float) -> None:
        """The reactors' idle sleep ends early when there is work; every other sleep is real."""
        thread = threading.current_thread()
        if isinstance(thread, association.Association) and seconds == _REACTOR_SLEEP:
            _wait_for_message(thread, _IDLE_WAIT)
        elif isinstance(thread, dul.DULServiceProvider):
            _wait_for_traffic(thread, seconds)
        else:
            # A send_* on another thread polls (0.1 ms sleeps) until the reactor has paused:
            # wake the reactor, so it pauses now rather than at the end of its idle wait.
            caller = sys._getframe(1).f_locals.get("self")
            if isinstance(caller, association.Association) and caller is not thread:
                _wake(caller)
            time.sleep(seconds)


def _wait_for_message(assoc: association.Association, seconds: float) -> None:
    messages = getattr(assoc.dimse, "msg_queue", None)
    if not isinstance(messages, queue.Queue):
        time.sleep(seconds)
        return
    with messages.not_empty:  # the queue's own lock: `put` notifies this condition
        if not messages.queue:
            messages.not_empty.wait(seconds)
        if messages.queue:
            # `put` wakes ONE waiter. A thread of ours blocked in `get` (a send_* call
            # waiting for its response) may be waiting too: pass the wake-up on, or it
            # sleeps through its own response while the reactor, paused, never takes it.
            messages.not_empty.notify()


def _wake(assoc: association.Association) -> None:
    """End the idle wait of *assoc*'s reactor (it re-checks everything it watches)."""
    messages = getattr(getattr(assoc, "dimse", None), "msg_queue", None)
    if isinstance(messages, queue.Queue):
        with messages.not_empty:
            messages.not_empty.notify_all()


@dataclass
class _Doorbell:
    """A pipe the DUL sleeps on next to its socket; ringing it means "a primitive is queued"."""

    read_fd: int
    write_fd: int

    def ring(self) -> None:
        with contextlib.suppress(BlockingIOError, OSError):
            os.write(self.write_fd, b"!")

    def drain(self) -> None:
        with contextlib.suppress(BlockingIOError, OSError):
            while os.read(self.read_fd, 64):
                pass


def _doorbell(provider: dul.DULServiceProvider) -> _Doorbell:
    """The provider's doorbell, fitted on first use: its outgoing queue rings it on every put."""
    bell: _Doorbell | None = getattr(provider, "_pacs_doorbell", None)
    if bell is not None:
        return bell
    read_fd, write_fd = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    bell = _Doorbell(read_fd, write_fd)
    weakref.finalize(provider, os.close, read_fd)
    weakref.finalize(provider, os.close, write_fd)
    outgoing = provider.to_provider_queue
    plain_put = outgoing.put

    def put(item: Any, block: bool = True, timeout: float | None = None) -> None:
        plain_put(item, block, timeout)
        bell.ring()

    # Same queue object (nothing queued before or during the swap is lost); only its put rings.
    outgoing.put = put  # type: ignore[method-assign]

    # Release and abort indications reach the association through the DUL's to_user_queue:
    # wake the association reactor for them, as a DIMSE message does.
    incoming = provider.to_user_queue
    plain_deliver = incoming.put

    def deliver(item: Any, block: bool = True, timeout: float | None = None) -> None:
        plain_deliver(item, block, timeout)
        assoc = getattr(provider, "assoc", None)
        if assoc is not None:
            _wake(assoc)

    incoming.put = deliver  # type: ignore[method-assign]
    provider._pacs_doorbell = bell  # type: ignore[attr-defined]
    return bell


def _wait_for_traffic(provider: dul.DULServiceProvider, seconds: float) -> None:
    wrapped = getattr(provider, "socket", None)
    sock = getattr(wrapped, "socket", None)
    if sock is None:
        time.sleep(seconds)
        return
    bell = _doorbell(provider)
    if provider.to_provider_queue.queue:
        return
    try:
        readable, _, _ = select.select([sock, bell.read_fd], [], [], seconds)
    except (OSError, ValueError):  # socket closed under us: sleep, then let the reactor notice
        time.sleep(seconds)
        return
    if bell.read_fd in readable:
        bell.drain()


def install() -> None:
    """Give pynetdicom's association and DUL modules the event-driven clock (idempotent)."""
    clock = _ReactorClock()
    for module in (association, dul):
        current = module.time
        if isinstance(current, ModuleType):
            module.time = clock  # type: ignore[attr-defined]
