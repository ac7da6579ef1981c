"""One bot (one token): its chats, pending updates, webhook, call log and injected faults,
and the entry point every Bot API call goes through."""

from __future__ import annotations

import contextlib
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from aiogram.methods import TelegramMethod
from aiogram.types import BotCommand, CallbackQuery, PreCheckoutQuery, Update, User

from . import registry
from .envelope import ApiError, bad_request, to_json
from .faults import Faults
from .files import FileStore
from .ids import IdFloor
from .limits import SendLimits
from .methods import HANDLERS
from .settings import TelegramAPISettings
from .updates import UpdateQueue
from .webhook import WebhookConfig, WebhookDelivery
from .world import World

# Telegram's update ids grow from a positive start and stay exact in JSON readers (2^53 - 1):
# an id beyond would push every id assigned after it out of the range bots accept.
MAX_UPDATE_ID = 2**53 - 1
TEXT_METHODS = frozenset({"sendMessage", "editMessageText"})


@dataclass(frozen=True)
class CallRecord:
    """One Bot API call the bot made, as the call log reports it."""

    method: str
    params: dict[str, Any]
    chat_id: int | None
    ok: bool
    error_code: int | None
    description: str | None
    result: Any
    source: str  # "http", or "webhook_reply" for a method returned in a webhook response
    at: float

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class BotState:
    def __init__(
        self, token: str, settings: TelegramAPISettings, report_violation: Callable[[str], None]
    ) -> None:
        self.token = token
        self.settings = settings
        self.me = User(
            id=int(token.split(":", 1)[0]),
            is_bot=True,
            first_name=settings.bot_first_name,
            username=settings.bot_username,
            can_join_groups=True,
            can_read_all_group_messages=False,
            supports_inline_queries=False,
        )
        self.world = World(settings.chat_history_size, IdFloor(settings.state_dir, self.me.id))
        self.updates = UpdateQueue()
        self.faults = Faults()
        self.limits = SendLimits() if settings.send_limits else None
        # Texts delivered per chat (sendMessage and editMessageText that succeeded): what the
        # bot logs as said, so a load test can tell a reply sent twice. Unbounded, unlike the
        # call log: one counter per chat.
        self.texts_delivered: Counter[int] = Counter()
        self.files = FileStore()
        self.calls: deque[CallRecord] = deque(maxlen=settings.call_log_size)
        self.webhook: WebhookDelivery | None = None
        # Queries the bot has been sent and not answered yet, by id.
        self.callback_queries: dict[str, CallbackQuery] = {}
        self.pre_checkout_queries: dict[str, PreCheckoutQuery] = {}
        # The chat every query was asked in, kept after its answer for the call log.
        self._query_chats: dict[str, int] = {}
        # The command menu, by scope and language (see methods.commands).
        self.commands: dict[str, list[BotCommand]] = {}
        # Invoice payloads by (chat id, message id), so a user can pay an invoice message.
        self.invoices: dict[tuple[int, int], str] = {}
        self._report_violation = report_violation

    def push_update(self, data: dict[str, Any]) -> Update:
        """Queue an update for the bot; update_id is assigned when missing. A given id must be
        one Telegram could send: every id assigned after it is larger."""
        given = data.get("update_id")
        if given is not None and (
            not isinstance(given, int) or isinstance(given, bool) or not 0 < given <= MAX_UPDATE_ID
        ):
            raise bad_request(f"update_id must be an integer from 1 to {MAX_UPDATE_ID}")
        update = Update.model_validate({"update_id": self.updates.next_id(), **data})
        self.world.observe(update)
        if (query := update.callback_query) is not None:
            self.callback_queries[query.id] = query
            message = query.message
            self._query_chats[query.id] = message.chat.id if message else query.from_user.id
        if (checkout := update.pre_checkout_query) is not None:
            self.pre_checkout_queries[checkout.id] = checkout
            self._query_chats[checkout.id] = checkout.from_user.id
        self.updates.push(update)
        return update

    async def set_webhook(self, config: WebhookConfig, drop_pending: bool) -> None:
        await self.delete_webhook(drop_pending)
        self.webhook = WebhookDelivery(
            config,
            self.updates,
            self._execute_webhook_reply,
            time_scale=self.settings.time_scale,
            timeout=self.settings.webhook_timeout,
        )
        self.webhook.start()

    async def delete_webhook(self, drop_pending: bool) -> None:
        if self.webhook is not None:
            await self.webhook.stop()
            self.webhook = None
        if drop_pending:
            self.updates.drop_all()

    async def _execute_webhook_reply(self, method: str, params: dict[str, Any]) -> None:
        # Telegram never tells the bot how a reply-in-webhook call went; the log does.
        with contextlib.suppress(ApiError):
            await self.call(method, params, source="webhook_reply")

    async def call(
        self,
        method_name: str,
        raw: dict[str, Any],
        source: str = "http",
        attachments: frozenset[str] = frozenset(),
    ) -> Any:
        """Validate and execute one call; its result as JSON, or ApiError as Telegram's."""
        try:
            model = registry.lookup(method_name)
            method, params = registry.validate(model, raw, attachments)
        except ApiError as error:
            self._record(method_name, raw, None, source, error=error)
            self.violation(f"{method_name}: {error.description}")
            raise
        name = model.__api_method__
        handler = HANDLERS.get(model)
        if handler is None:
            missing = ApiError(501, f"Not Implemented: the local Bot API does not implement {name}")
            self._record(name, params, None, source, error=missing)
            self.violation(f"{name}: {missing.description}")
            raise missing
        chat_id = self._chat_of(method)
        try:
            fault = self.faults.take(name, chat_id)
            if fault is not None:
                await fault.apply()
            if self.limits is not None and (wait := self.limits.check(name, chat_id)):
                raise ApiError(429, f"Too Many Requests: retry after {wait}", retry_after=wait)
            result = to_json(await handler(self, method))
        except ApiError as error:
            self._record(name, params, chat_id, source, error=error)
            raise
        self._record(name, params, chat_id, source, result=result)
        if chat_id is not None and name in TEXT_METHODS:
            self.texts_delivered[chat_id] += 1
        return result

    def violation(self, message: str) -> None:
        self._report_violation(f"bot {self.me.id}: {message}")

    def calls_for(self, chat_id: int | None = None, method: str | None = None) -> list[CallRecord]:
        return [
            call
            for call in self.calls
            if (chat_id is None or call.chat_id == chat_id)
            and (method is None or call.method.lower() == method.lower())
        ]

    def _chat_of(self, method: TelegramMethod[Any]) -> int | None:
        chat_id = getattr(method, "chat_id", None)
        if isinstance(chat_id, int):
            return chat_id
        query_id = getattr(method, "callback_query_id", None) or getattr(
            method, "pre_checkout_query_id", None
        )
        return self._query_chats.get(query_id) if isinstance(query_id, str) else None

    def _record(
        self,
        method: str,
        params: dict[str, Any],
        chat_id: int | None,
        source: str,
        *,
        result: Any = None,
        error: ApiError | None = None,
    ) -> None:
        self.calls.append(
            CallRecord(
                method=method,
                params=params,
                chat_id=chat_id,
                ok=error is None,
                error_code=error.status if error else None,
                description=error.description if error else None,
                result=result,
                source=source,
                at=time.time(),
            )
        )
