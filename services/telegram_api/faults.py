"""Injected failures: the errors a production bot must survive, on demand."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from enum import StrEnum

from .envelope import ApiError


class FaultKind(StrEnum):
    RETRY_AFTER = "retry_after"  # 429 Too Many Requests with parameters.retry_after
    BLOCKED = "blocked"  # 403 bot was blocked by the user
    SERVER_ERROR = "server_error"  # 5xx
    DELAY = "delay"  # answer normally, but only after `delay` seconds


@dataclass
class Fault:
    method: str  # Bot API method name, case-insensitive; "*" for every method
    kind: FaultKind
    chat_id: int | None = None  # only calls for this chat; None for any
    times: int | None = 1  # how many calls it hits; None until cleared
    retry_after: int = 1
    status: int = 500
    delay: float = 1.0

    def matches(self, method: str, chat_id: int | None) -> bool:
        return (self.method == "*" or self.method.lower() == method.lower()) and (
            self.chat_id is None or self.chat_id == chat_id
        )

    async def apply(self) -> None:
        """Raise the error this fault stands for (a delay only waits)."""
        if self.kind is FaultKind.DELAY:
            await asyncio.sleep(self.delay)
        elif self.kind is FaultKind.RETRY_AFTER:
            raise ApiError(
                429,
                f"Too Many Requests: retry after {self.retry_after}",
                retry_after=self.retry_after,
            )
        elif self.kind is FaultKind.BLOCKED:
            raise ApiError(403, "Forbidden: bot was blocked by the user")
        else:
            raise ApiError(self.status, "Internal Server Error")


class Faults:
    def __init__(self) -> None:
        self._active: list[Fault] = []

    def add(self, fault: Fault) -> None:
        self._active.append(fault)

    def clear(self) -> None:
        self._active.clear()

    def take(self, method: str, chat_id: int | None) -> Fault | None:
        """The first fault matching this call, used up by it."""
        for fault in self._active:
            if fault.matches(method, chat_id):
                if fault.times is not None:
                    fault.times -= 1
                    if fault.times <= 0:
                        self._active.remove(fault)
                return fault
        return None
