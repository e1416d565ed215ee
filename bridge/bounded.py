"""Thread-per-request serving with a bound on how many threads run at once."""

from __future__ import annotations

import socketserver
import threading
from typing import Any

__all__ = ["BoundedThreadingMixIn"]


class BoundedThreadingMixIn(socketserver.ThreadingMixIn, socketserver.BaseServer):
    """Handles each request on its own thread, at most ``max_threads`` at once; a request
    beyond them goes to ``refuse`` (a dropped datagram, a closed connection), so a flood
    cannot start threads without end.

    Place it before the socketserver base class; set ``max_threads`` on the subclass.
    """

    max_threads = 32
    daemon_threads = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._thread_slots = threading.BoundedSemaphore(self.max_threads)

    def refuse(self, request: Any, client_address: Any) -> None:
        """Called instead of a handler when ``max_threads`` are busy."""
        self.shutdown_request(request)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._thread_slots.acquire(blocking=False):
            self.refuse(request, client_address)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._thread_slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._thread_slots.release()
