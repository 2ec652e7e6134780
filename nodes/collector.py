"""Fewer garbage collections while many LLM calls are under way.

A graph run waiting on an LLM call keeps about 400 objects alive (LangGraph's tasks, channels
and coroutines, the request), and CPython's cyclic garbage collector looks at all of them again
each time it collects an older generation. With 1,024 runs in flight that cost 1.8 ms of each
call's 4.5 ms of CPU; collecting the youngest generation every 10,000 allocations instead of
every 700 (CPython's default) cut it to 0.6 ms, and the call to 3.2 ms (``benchmarks/scale.py``).

So once :data:`MANY` calls of the process are waiting or in flight at once, the threshold is
raised to :data:`THRESHOLD`. It goes back to what it was at the first call that starts after
:data:`QUIET` seconds without any call under way (unless someone changed it meanwhile): a busy
client goes in waves, a thousand runs being in their other nodes at once between two waves of
calls, so "none under way" alone would come back too soon (and after the last call of a batch
it stays raised until the next call). Garbage is still collected, a little later: about 10,000
more objects wait for it. A threshold of 0 (the collector off) or of 10,000 or more is left alone.
"""

from __future__ import annotations

import gc
import threading
import time
from types import TracebackType

__all__ = ["MANY", "QUIET", "THRESHOLD", "many_calls"]

MANY = 64
THRESHOLD = 10_000
QUIET = 10.0


class _ManyCalls:
    """Counts the calls under way (a context manager around each)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()  # LLM clients may run on several event loops in threads
        self._count = 0
        self._saved: tuple[int, ...] | None = None  # the thresholds before they were raised
        self._idle_since = 0.0  # when the count last fell to zero

    @property
    def raised(self) -> bool:
        return self._saved is not None

    def __enter__(self) -> None:
        with self._lock:
            if self._count == 0 and self._saved is not None and time.monotonic() - self._idle_since >= QUIET:
                if gc.get_threshold()[0] == THRESHOLD:
                    gc.set_threshold(*self._saved)
                self._saved = None
            self._count += 1
            if self._count >= MANY and self._saved is None:
                current = gc.get_threshold()
                if 0 < current[0] < THRESHOLD:
                    self._saved = current
                    gc.set_threshold(THRESHOLD, *current[1:])

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        with self._lock:
            self._count -= 1
            if self._count == 0:
                self._idle_since = time.monotonic()


many_calls = _ManyCalls()
"""``with many_calls:`` around each LLM call."""
