"""Per-user throttling: an in-process token bucket for each Telegram user."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from enum import Enum
from time import monotonic

# Buckets of users not seen for a while are dropped oldest first; a full bucket is the same
# as none, so forgetting one changes nothing but memory.
MAX_TRACKED_USERS = 100_000


class Verdict(Enum):
    ALLOW = "allow"
    # Over the limit for the first time in a row: answer politely once.
    WARN = "warn"
    # Still over the limit: stay silent, or the polite answers become the flood.
    DROP = "drop"


@dataclass
class _Bucket:
    tokens: float
    updated: float
    warned: bool = False


class Throttle:
    def __init__(self, per_minute: int, burst: int) -> None:
        self._rate = per_minute / 60.0
        self._burst = float(burst)
        self._buckets: OrderedDict[int, _Bucket] = OrderedDict()

    def check(self, user_id: int) -> Verdict:
        """Takes a token from the user's bucket if there is one."""
        now = monotonic()
        bucket = self._buckets.pop(user_id, None) or _Bucket(self._burst, now)
        bucket.tokens = min(self._burst, bucket.tokens + (now - bucket.updated) * self._rate)
        bucket.updated = now
        self._buckets[user_id] = bucket
        if len(self._buckets) > MAX_TRACKED_USERS:
            self._buckets.popitem(last=False)
        if bucket.tokens >= 1:
            bucket.tokens -= 1
            bucket.warned = False
            return Verdict.ALLOW
        if bucket.warned:
            return Verdict.DROP
        bucket.warned = True
        return Verdict.WARN
