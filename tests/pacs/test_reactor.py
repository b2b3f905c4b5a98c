"""pacs/pynetdicom_compat.py: the association reactor's event-driven wait must not swallow a wake-up."""

from __future__ import annotations

import queue
import threading
import time
from types import SimpleNamespace
from typing import Any

from pacs.pynetdicom_compat import _wait_for_message


def test_a_response_waiter_is_woken_even_when_the_reactor_waits_too() -> None:
    """`Queue.put` wakes one waiter; the reactor's wait must pass the wake-up on to a `get`."""
    messages: queue.Queue[Any] = queue.Queue()
    assoc: Any = SimpleNamespace(dimse=SimpleNamespace(msg_queue=messages))
    received = threading.Event()

    def reactor() -> None:  # first in line on the condition, as when it idles between messages
        _wait_for_message(assoc, 30.0)

    def send_and_wait() -> None:  # a send_* call blocked on its response
        messages.get(timeout=30.0)
        received.set()

    waiters = [threading.Thread(target=reactor), threading.Thread(target=send_and_wait)]
    for waiter in waiters:
        waiter.start()
        time.sleep(0.2)  # let it reach the condition: the reactor waits first
    messages.put(("context", "response"))
    assert received.wait(10), "the response's wake-up went to the reactor and stopped there"
    for waiter in waiters:
        waiter.join(30)
