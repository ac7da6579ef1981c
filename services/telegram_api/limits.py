"""Telegram's documented send limits, enforced when TELEGRAM_API_SEND_LIMITS is on (the load
tests): about 30 messages per second overall, one per second in a chat, 20 per minute in a
group. A call past one of them gets what Telegram answers, 429 with parameters.retry_after,
so the bot's outbox and its 429 handling are under the pressure a busy bot meets."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

# Methods that send a message (edits, answers and chat actions are not rate limited so).
SENDING = frozenset(
    name.lower()
    for name in (
        "sendMessage",
        "sendPhoto",
        "sendDocument",
        "sendVideo",
        "sendAudio",
        "sendVoice",
        "sendAnimation",
        "sendSticker",
        "sendLocation",
        "sendContact",
        "sendPoll",
        "sendDice",
        "sendInvoice",
        "sendMediaGroup",
        "copyMessage",
        "copyMessages",
        "forwardMessage",
        "forwardMessages",
    )
)
OVERALL_PER_SECOND = 30.0
CHAT_PER_SECOND = 1.0
GROUP_PER_MINUTE = 20.0


@dataclass
class Bucket:
    """A token bucket: `capacity` sends at once, refilled at `rate` per second."""

    capacity: float
    rate: float
    tokens: float = field(init=False)
    at: float = field(init=False, default=0.0)

    def __post_init__(self) -> None:
        self.tokens = self.capacity

    def wait(self, now: float) -> float:
        """Seconds until one send is allowed (0: now)."""
        self.tokens = min(self.capacity, self.tokens + (now - self.at) * self.rate)
        self.at = now
        return 0.0 if self.tokens >= 1 else (1 - self.tokens) / self.rate

    def take(self) -> None:
        self.tokens -= 1


class SendLimits:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._overall = Bucket(OVERALL_PER_SECOND, OVERALL_PER_SECOND)
        self._chats: dict[int, Bucket] = {}
        self.refused = 0

    def check(self, method: str, chat_id: int | None) -> int | None:
        """None when the call may go ahead (and it is counted); else retry_after, whole
        seconds, as Telegram gives it."""
        if method.lower() not in SENDING:
            return None
        buckets = [self._overall]
        if chat_id is not None:
            buckets.append(self._chats.setdefault(chat_id, _chat_bucket(chat_id)))
        now = self._clock()
        wait = max(bucket.wait(now) for bucket in buckets)
        if wait > 0:
            self.refused += 1
            return max(1, math.ceil(wait))
        for bucket in buckets:
            bucket.take()
        return None


def _chat_bucket(chat_id: int) -> Bucket:
    # Negative ids are groups and channels: 20 a minute, which may come at once.
    if chat_id < 0:
        return Bucket(GROUP_PER_MINUTE, GROUP_PER_MINUTE / 60)
    return Bucket(1, CHAT_PER_SECOND)
