"""Token buckets in process memory (one admin API process per deployment): per API key for
requests, per client address for failed key checks. Bounded: the least recently used keys
are forgotten first (a forgotten bucket starts full again)."""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from time import monotonic


@dataclass
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    def __init__(
        self,
        per_minute: int,
        burst: int,
        clock: Callable[[], float] = monotonic,
        max_keys: int = 10_000,
    ) -> None:
        self._rate = per_minute / 60.0
        self._burst = float(burst)
        self._clock = clock
        self._max_keys = max_keys
        self._buckets: OrderedDict[Hashable, _Bucket] = OrderedDict()

    def _refill(self, key: Hashable) -> _Bucket:
        now = self._clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = _Bucket(self._burst, now)
            if len(self._buckets) > self._max_keys:
                self._buckets.popitem(last=False)
        self._buckets.move_to_end(key)
        bucket.tokens = min(self._burst, bucket.tokens + (now - bucket.updated) * self._rate)
        bucket.updated = now
        return bucket

    def acquire(self, key: Hashable) -> float:
        """Takes one token for the key: 0 when allowed, else the seconds until one is free."""
        bucket = self._refill(key)
        if bucket.tokens >= 1:
            bucket.tokens -= 1
            return 0.0
        return (1 - bucket.tokens) / self._rate

    def peek(self, key: Hashable) -> float:
        """What acquire would answer, without taking a token."""
        if key not in self._buckets:
            return 0.0
        bucket = self._refill(key)
        return 0.0 if bucket.tokens >= 1 else (1 - bucket.tokens) / self._rate

    @staticmethod
    def retry_after(seconds: float) -> str:
        """The Retry-After header value: whole seconds, rounded up."""
        return str(max(1, math.ceil(seconds)))
