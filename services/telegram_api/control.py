"""The control API: what a test or a developer does from Telegram's side (a user writes,
presses a button, pays an invoice), what the bot did (its calls), and faults to inject.

The same operations in-process (`TelegramServer.control`) and over HTTP (`/__control/...`):
a user writes in private (`send_text`, POST /__control/messages) or a member writes in a group
or one of its forum topics (`send_group_text`, POST /__control/group-messages with chat_id,
user_id, text, and optionally message_thread_id and first_name).
"""

from __future__ import annotations

import json
import secrets
import time
from typing import TYPE_CHECKING, Any

from aiogram.types import File, Message, Update
from aiohttp import web

from .bot import BotState, CallRecord
from .envelope import ApiError, bad_request, error_response, ok_response, to_json
from .faults import Fault, FaultKind
from .webhook import WebhookConfig

if TYPE_CHECKING:
    from .server import TelegramServer

# Control requests are small JSON documents (file uploads have their own, larger, limit).
CONTROL_MAX_BYTES = 1024 * 1024


def _user(user_id: int, first_name: str) -> dict[str, Any]:
    return {"id": user_id, "is_bot": False, "first_name": first_name}


def _command_entities(message: dict[str, Any], text: str) -> None:
    """A text starting with /command gets the bot_command entity Telegram gives it."""
    if text.startswith("/"):
        command = text.split()[0]
        message["entities"] = [{"type": "bot_command", "offset": 0, "length": len(command)}]


class Control:
    def __init__(self, server: TelegramServer) -> None:
        self._server = server

    def bot(self, token: str | None = None) -> BotState:
        """A bot by token; the first configured token when None."""
        bots = self._server.bots
        if token is None:
            return next(iter(bots.values()))
        if token not in bots:
            raise bad_request("unknown bot token")
        return bots[token]

    def push_update(self, update: dict[str, Any] | Update, token: str | None = None) -> Update:
        """Queue a Telegram Update (update_id assigned when missing) for delivery."""
        if isinstance(update, Update):
            update = update.model_dump(mode="json", by_alias=True, exclude_none=True)
        return self.bot(token).push_update(update)

    def send_text(
        self, user_id: int, text: str, first_name: str = "Test User", token: str | None = None
    ) -> Update:
        """A user writes `text` to the bot in their private chat."""
        bot = self.bot(token)
        chat = bot.world.chat(user_id)
        message = {
            "message_id": chat.last_message_id + 1,
            "date": int(time.time()),
            "chat": {"id": user_id, "type": "private", "first_name": first_name},
            "from": _user(user_id, first_name),
            "text": text,
        }
        _command_entities(message, text)
        return bot.push_update({"message": message})

    def send_group_text(
        self,
        chat_id: int,
        user_id: int,
        text: str,
        message_thread_id: int | None = None,
        first_name: str = "Test User",
        token: str | None = None,
    ) -> Update:
        """A member writes `text` in a group. With `message_thread_id`, inside that topic of a
        forum supergroup (ids below -1000000000000 are forums; the topic must exist, e.g.
        created by the bot's createForumTopic): the message carries message_thread_id and
        is_topic_message, and replies to the topic's opening message, as Telegram sends it."""
        if chat_id >= 0:
            raise bad_request("a group's chat_id is negative")
        bot = self.bot(token)
        chat = bot.world.chat(chat_id)
        message: dict[str, Any] = {
            "message_id": chat.last_message_id + 1,
            "date": int(time.time()),
            "chat": to_json(chat.chat),
            "from": _user(user_id, first_name),
            "text": text,
        }
        if message_thread_id is not None:
            if not chat.chat.is_forum:
                raise bad_request("the chat is not a forum")
            if message_thread_id not in chat.topics:
                raise bad_request("message thread not found")
            message["message_thread_id"] = message_thread_id
            message["is_topic_message"] = True
            opening = chat.messages.get(message_thread_id)
            if opening is not None:
                message["reply_to_message"] = to_json(opening)
        _command_entities(message, text)
        return bot.push_update({"message": message})

    def press_button(
        self, chat_id: int, message_id: int, data: str, token: str | None = None
    ) -> Update:
        """The chat's user presses the inline button with this callback data."""
        bot = self.bot(token)
        message = bot.world.chat(chat_id).message(message_id, "message not found")
        buttons = message.reply_markup.inline_keyboard if message.reply_markup else []
        if not any(button.callback_data == data for row in buttons for button in row):
            raise bad_request("the message has no button with this callback data")
        return bot.push_update(
            {
                "callback_query": {
                    "id": secrets.token_hex(8),
                    "from": _user(chat_id, message.chat.first_name or "Test User"),
                    "chat_instance": str(chat_id),
                    "message": to_json(message),
                    "data": data,
                }
            }
        )

    def pay_invoice(self, chat_id: int, message_id: int, token: str | None = None) -> Update:
        """The user pays an invoice message: the bot gets a pre_checkout_query; answering it
        with ok=True brings the successful_payment message."""
        bot = self.bot(token)
        message = bot.world.chat(chat_id).message(message_id, "message not found")
        payload = bot.invoices.get((chat_id, message_id))
        if message.invoice is None or payload is None:
            raise bad_request("the message is not an invoice")
        return bot.push_update(
            {
                "pre_checkout_query": {
                    "id": secrets.token_hex(8),
                    "from": _user(chat_id, message.chat.first_name or "Test User"),
                    "currency": message.invoice.currency,
                    "total_amount": message.invoice.total_amount,
                    "invoice_payload": payload,
                }
            }
        )

    def add_file(self, content: bytes, name: str, token: str | None = None) -> File:
        """Store a file a user sends (put its file_id in a pushed update); getFile and the
        download path serve it."""
        return self.bot(token).files.add(content, name)

    def calls(
        self, chat_id: int | None = None, method: str | None = None, token: str | None = None
    ) -> list[CallRecord]:
        """The Bot API calls the bot made, in order; optionally of one chat or method."""
        return self.bot(token).calls_for(chat_id, method)

    def messages(self, chat_id: int, token: str | None = None) -> list[Message]:
        """A chat as its members see it now: users' and the bot's messages, edits applied,
        deleted ones gone, in order."""
        chat = self.bot(token).world.chats.get(chat_id)
        return [chat.messages[i] for i in sorted(chat.messages)] if chat else []

    def take_updates(self, chat_id: int, token: str | None = None) -> list[Update]:
        """The chat's pending updates, removed from the queue: the caller delivers them."""
        return self.bot(token).updates.take(chat_id)

    def texts_delivered(self, token: str | None = None) -> dict[str, int]:
        """Texts delivered per chat (sendMessage, editMessageText), by chat id."""
        return {str(chat): count for chat, count in self.bot(token).texts_delivered.items()}

    def inject_fault(
        self, method: str, kind: FaultKind | str, token: str | None = None, **options: Any
    ) -> Fault:
        """Make the next matching call(s) fail; options: chat_id, times, retry_after,
        status, delay (see Fault)."""
        fault = Fault(method=method, kind=FaultKind(kind), **options)
        self.bot(token).faults.add(fault)
        return fault

    def clear_faults(self, token: str | None = None) -> None:
        self.bot(token).faults.clear()

    async def set_webhook(
        self,
        url: str,
        secret_token: str | None = None,
        max_connections: int = 40,
        token: str | None = None,
    ) -> None:
        """Register a webhook as the bot's setWebhook would (without a call in the log)."""
        config = WebhookConfig(url=url, secret_token=secret_token, max_connections=max_connections)
        await self.bot(token).set_webhook(config, drop_pending=False)

    async def delete_webhook(self, token: str | None = None) -> None:
        await self.bot(token).delete_webhook(drop_pending=False)

    async def reset(self, *, keep_webhooks: bool = False) -> None:
        """Start over: no chats, updates, calls, faults, nor (unless kept) webhooks."""
        await self._server.reset(keep_webhooks=keep_webhooks)

    def take_violations(self) -> list[str]:
        """Invalid calls so far (strict mode fails on them at stop); taken, so expected ones
        can be asserted and cleared."""
        return self._server.take_violations()


def routes(control: Control) -> list[web.RouteDef]:
    """The control API over HTTP; every answer uses Telegram's envelope."""

    def _token(request: web.Request) -> str | None:
        return request.query.get("token")

    async def _body(request: web.Request) -> dict[str, Any]:
        too_large = ApiError(413, f"Request Entity Too Large: over {CONTROL_MAX_BYTES} bytes")
        if (request.content_length or 0) > CONTROL_MAX_BYTES:
            raise too_large  # refused on the header, before reading
        raw = bytearray()
        async for chunk in request.content.iter_chunked(64 * 1024):
            raw += chunk
            if len(raw) > CONTROL_MAX_BYTES:
                raise too_large
        try:
            body = json.loads(raw)
        except ValueError as error:
            raise bad_request("the body must be a JSON object") from error
        if not isinstance(body, dict):
            raise bad_request("the body must be a JSON object")
        return body

    def _int(request: web.Request, name: str) -> int | None:
        value = request.query.get(name)
        if value is None:
            return None
        try:
            return int(value)
        except ValueError as error:
            raise bad_request(f"{name} must be an integer") from error

    async def updates(request: web.Request) -> object:
        return control.push_update(await _body(request), _token(request))

    async def messages(request: web.Request) -> object:
        body = await _body(request)
        return control.send_text(
            int(body["user_id"]),
            str(body["text"]),
            str(body.get("first_name", "Test User")),
            _token(request),
        )

    async def group_messages(request: web.Request) -> object:
        body = await _body(request)
        thread = body.get("message_thread_id")
        return control.send_group_text(
            int(body["chat_id"]),
            int(body["user_id"]),
            str(body["text"]),
            None if thread is None else int(thread),
            str(body.get("first_name", "Test User")),
            _token(request),
        )

    async def buttons(request: web.Request) -> object:
        body = await _body(request)
        return control.press_button(
            int(body["chat_id"]), int(body["message_id"]), str(body["data"]), _token(request)
        )

    async def payments(request: web.Request) -> object:
        body = await _body(request)
        return control.pay_invoice(int(body["chat_id"]), int(body["message_id"]), _token(request))

    async def files(request: web.Request) -> object:
        name = request.query.get("name", "file")
        return control.add_file(await request.read(), name, _token(request))

    async def calls(request: web.Request) -> object:
        found = control.calls(
            _int(request, "chat_id"), request.query.get("method"), _token(request)
        )
        return [call.to_json() for call in found]

    async def chat_messages(request: web.Request) -> object:
        try:
            chat_id = int(request.match_info["chat_id"])
        except ValueError as error:
            raise bad_request("chat_id must be an integer") from error
        return control.messages(chat_id, _token(request))

    async def take_updates(request: web.Request) -> object:
        body = await _body(request)
        return control.take_updates(int(body["chat_id"]), _token(request))

    async def texts_delivered(request: web.Request) -> object:
        return control.texts_delivered(_token(request))

    async def add_fault(request: web.Request) -> object:
        body = await _body(request)
        fault = control.inject_fault(
            str(body.pop("method")), str(body.pop("kind")), _token(request), **body
        )
        return {"method": fault.method, "kind": fault.kind.value, "times": fault.times}

    async def clear_faults(request: web.Request) -> object:
        control.clear_faults(_token(request))
        return True

    async def set_webhook(request: web.Request) -> object:
        body = await _body(request)
        await control.set_webhook(
            str(body["url"]),
            body.get("secret_token"),
            int(body.get("max_connections", 40)),
            _token(request),
        )
        return True

    async def delete_webhook(request: web.Request) -> object:
        await control.delete_webhook(_token(request))
        return True

    async def reset(request: web.Request) -> object:
        # Over HTTP the webhooks stay (the stack's bot keeps working); ?webhooks=drop too.
        await control.reset(keep_webhooks=request.query.get("webhooks") != "drop")
        return True

    async def violations(request: web.Request) -> object:
        return control.take_violations()

    def endpoint(operation: Any) -> Any:
        async def handle(request: web.Request) -> web.StreamResponse:
            try:
                return ok_response(await operation(request))
            except ApiError as error:
                return error_response(error)
            except (KeyError, TypeError, ValueError) as error:
                return error_response(bad_request(f"invalid control request: {error!r}"))

        return handle

    return [
        web.post("/__control/updates", endpoint(updates)),
        web.post("/__control/messages", endpoint(messages)),
        web.post("/__control/group-messages", endpoint(group_messages)),
        web.post("/__control/buttons", endpoint(buttons)),
        web.post("/__control/payments", endpoint(payments)),
        web.post("/__control/files", endpoint(files)),
        web.get("/__control/calls", endpoint(calls)),
        web.post("/__control/updates/take", endpoint(take_updates)),
        web.get("/__control/texts-delivered", endpoint(texts_delivered)),
        web.get("/__control/chats/{chat_id}/messages", endpoint(chat_messages)),
        web.post("/__control/faults", endpoint(add_fault)),
        web.delete("/__control/faults", endpoint(clear_faults)),
        web.post("/__control/webhook", endpoint(set_webhook)),
        web.delete("/__control/webhook", endpoint(delete_webhook)),
        web.get("/__control/violations", endpoint(violations)),
        web.post("/__control/reset", endpoint(reset)),
    ]
