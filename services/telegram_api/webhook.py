"""Webhook delivery as Telegram does it: a POST per update with the secret-token header,
updates of one chat strictly in order (different chats concurrently, up to max_connections),
retries with exponential backoff until the receiver answers 2xx, and a method in the
response body executed as if the bot had called it."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiogram.types import Update

from .updates import UpdateQueue, allowed, chat_key

log = logging.getLogger(__name__)

# Seconds before the first retry, doubling per failure up to the cap (times time_scale).
FIRST_RETRY = 1.0
MAX_RETRY = 60.0

# Runs a Bot API call found in a webhook response: (method name, parameters).
ReplyExecutor = Callable[[str, dict[str, Any]], Awaitable[None]]


@dataclass
class WebhookConfig:
    url: str
    secret_token: str | None = None
    max_connections: int = 40
    allowed_updates: list[str] | None = None
    last_error_date: int | None = None
    last_error_message: str | None = None


async def read_reply(response: aiohttp.ClientResponse) -> dict[str, Any] | None:
    """The method a receiver returned in its response, as raw parameters with `method`.

    aiogram answers with multipart/form-data (even without files) or `{}`; others use JSON.
    """
    if response.content_type == "multipart/form-data":
        fields: dict[str, Any] = {}
        reader = aiohttp.MultipartReader.from_response(response)
        async for part in reader:
            # Files cannot travel in a webhook reply (Telegram ignores them), so only fields.
            if isinstance(part, aiohttp.BodyPartReader) and part.name and part.filename is None:
                fields[part.name] = await part.text()
        return fields if "method" in fields else None
    body = await response.read()
    if not body.strip():
        return None
    try:
        decoded = json.loads(body)
    except ValueError:
        return None
    if isinstance(decoded, dict) and isinstance(decoded.get("method"), str):
        return decoded
    return None


class WebhookDelivery:
    def __init__(
        self,
        config: WebhookConfig,
        queue: UpdateQueue,
        execute_reply: ReplyExecutor,
        *,
        time_scale: float,
        timeout: float,
    ) -> None:
        self.config = config
        self._queue = queue
        self._execute_reply = execute_reply
        self._time_scale = time_scale
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._slots = asyncio.Semaphore(config.max_connections)
        self._backlog: dict[int | None, deque[Update]] = {}
        self._workers: dict[int | None, asyncio.Task[None]] = {}
        self._session: aiohttp.ClientSession | None = None

    def start(self) -> None:
        self._session = aiohttp.ClientSession(timeout=self._timeout)
        for update in self._queue.pending():
            self._enqueue(update)
        self._queue.listeners.append(self._enqueue)

    async def stop(self) -> None:
        """Stop delivering; updates not yet accepted stay pending (getUpdates sees them)."""
        self._queue.listeners.remove(self._enqueue)
        workers = list(self._workers.values())
        for worker in workers:
            worker.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
        self._workers.clear()
        self._backlog.clear()
        if self._session is not None:
            await self._session.close()

    def _enqueue(self, update: Update) -> None:
        if not allowed(update, self.config.allowed_updates):
            self._queue.confirm(update.update_id)  # Telegram never sends filtered types
            return
        key = chat_key(update)
        self._backlog.setdefault(key, deque()).append(update)
        if key not in self._workers:
            self._workers[key] = asyncio.create_task(self._drain(key))

    async def _drain(self, key: int | None) -> None:
        backlog = self._backlog[key]
        while backlog:
            await self._deliver(backlog[0])
            backlog.popleft()
        # No await since the emptiness check: nothing can have been appended meanwhile.
        del self._backlog[key]
        del self._workers[key]

    async def _deliver(self, update: Update) -> None:
        failures = 0
        while True:
            async with self._slots:
                error = await self._post(update)
            if error is None:
                self._queue.confirm(update.update_id)
                return
            self.config.last_error_date = int(time.time())
            self.config.last_error_message = error
            delay = min(MAX_RETRY, FIRST_RETRY * 2**failures) * self._time_scale
            failures += 1
            log.info("webhook delivery of update %s failed (%s)", update.update_id, error)
            await asyncio.sleep(delay)

    async def _post(self, update: Update) -> str | None:
        """Deliver once; None on success, else the error getWebhookInfo reports."""
        assert self._session is not None
        headers = {}
        if self.config.secret_token:
            headers["X-Telegram-Bot-Api-Secret-Token"] = self.config.secret_token
        body = update.model_dump(mode="json", by_alias=True, exclude_none=True)
        try:
            async with self._session.post(self.config.url, json=body, headers=headers) as response:
                if not 200 <= response.status < 300:
                    return f"Wrong response from the webhook: {response.status} {response.reason}"
                reply = await read_reply(response)
        except TimeoutError:
            return "Read timeout expired"
        except aiohttp.ClientError as error:
            return f"Connection failed: {error}"
        if reply is not None:
            method = str(reply.pop("method"))
            await self._execute_reply(method, reply)
        return None
