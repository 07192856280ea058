"""A bounded queue that never blocks its producer: when full it drops the OLDEST item.

Contract: ``put`` is called by one or more producer threads and never blocks; when the
queue already holds ``maxsize`` items the oldest is discarded and ``dropped`` goes up by
one (so a consumer always sees the newest data — a camera frame queue of size 1 is the
"keep only the latest frame" slot). ``get`` blocks the consumer up to a timeout. Every
method is thread-safe. ``close`` wakes blocked consumers; after it ``get`` returns
whatever is left and then raises :class:`Closed`. ``on_put(item)`` runs before an item
becomes visible to the consumer and ``on_drop(item)`` after it was discarded (both outside
the lock) — the frame ledger's hooks: an item is entered before anyone can settle it.
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class Closed(Exception):
    """The queue was closed and is empty."""


class DropOldestQueue(Generic[T]):
    def __init__(self, maxsize: int, on_drop: Callable[[T], object] | None = None,
                 on_put: Callable[[T], object] | None = None) -> None:
        if maxsize < 1:
            raise ValueError("maxsize must be >= 1")
        self.maxsize = maxsize
        self._items: collections.deque[T] = collections.deque()
        self._cond = threading.Condition()
        self._closed = False
        self._on_drop = on_drop  # called with the dropped item, outside the lock
        self._on_put = on_put  # called with each new item before it is queued
        self.dropped = 0
        self.put_count = 0

    def put(self, item: T) -> None:
        if self._on_put is not None:
            self._on_put(item)
        dropped = None
        with self._cond:
            self.put_count += 1
            if len(self._items) >= self.maxsize:
                dropped = self._items.popleft()
                self.dropped += 1
            self._items.append(item)
            self._cond.notify()
        if dropped is not None and self._on_drop is not None:
            self._on_drop(dropped)

    def get(self, timeout: float | None = None) -> T | None:
        """The oldest item, or None after ``timeout``; raises Closed once closed and empty."""
        with self._cond:
            if not self._items and not self._closed:
                self._cond.wait(timeout)
            if self._items:
                return self._items.popleft()
            if self._closed:
                raise Closed
            return None

    def put_back(self, item: T) -> None:
        """Return an item a consumer took but could not use to the head of the queue, as the
        oldest; if the queue filled up meanwhile, it is the one dropped (``on_drop``)."""
        with self._cond:
            full = len(self._items) >= self.maxsize
            if full:
                self.dropped += 1
            else:
                self._items.appendleft(item)
                self._cond.notify()
        if full and self._on_drop is not None:
            self._on_drop(item)

    def get_nowait(self) -> T | None:
        with self._cond:
            return self._items.popleft() if self._items else None

    def take_all(self) -> list[T]:
        """Empty the queue, returning what it held (oldest first)."""
        with self._cond:
            items, self._items = list(self._items), collections.deque()
            return items

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    @property
    def closed(self) -> bool:
        return self._closed

    def __len__(self) -> int:
        with self._cond:
            return len(self._items)
