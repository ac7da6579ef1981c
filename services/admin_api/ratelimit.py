"""A per-API-key token bucket, in process memory (one admin API process per deployment)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from time import monotonic


@dataclass
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    def __init__(self, per_minute: int, burst: int, clock: Callable[[], float] = monotonic) -> None:
        self._rate = per_minute / 60.0
        self._burst = float(burst)
        self._clock = clock
        self._buckets: dict[int, _Bucket] = {}

    def acquire(self, key_id: int) -> float:
        """Takes one token for the key: 0 when allowed, else the seconds until one is free."""
        now = self._clock()
        bucket = self._buckets.setdefault(key_id, _Bucket(self._burst, now))
        bucket.tokens = min(self._burst, bucket.tokens + (now - bucket.updated) * self._rate)
        bucket.updated = now
        if bucket.tokens >= 1:
            bucket.tokens -= 1
            return 0.0
        return (1 - bucket.tokens) / self._rate

    @staticmethod
    def retry_after(seconds: float) -> str:
        """The Retry-After header value: whole seconds, rounded up."""
        return str(max(1, math.ceil(seconds)))
