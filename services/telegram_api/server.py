"""The HTTP server: Telegram's `/bot{token}/{method}` and `/file/bot{token}/{path}`, the
control API and a liveness probe; `TelegramServer` runs it in-process or as a service."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from aiohttp import web

from . import control as control_api
from .bot import BotState
from .envelope import ApiError, bad_request, error_response, ok_response
from .settings import TelegramAPISettings

log = logging.getLogger(__name__)

CHAT_PAGE = Path(__file__).parent / "static" / "chat.html"
# Telegram accepts uploads of up to 50 MB through the Bot API.
MAX_REQUEST_BYTES = 50 * 1024 * 1024


class StrictModeError(AssertionError):
    """The bot made invalid Bot API calls while strict mode was on."""


async def _read_params(request: web.Request) -> tuple[dict[str, Any], frozenset[str]]:
    """Parameters from the query string and the body (JSON, urlencoded or multipart form),
    and the names of uploaded files."""
    params: dict[str, Any] = dict(request.query)
    files: set[str] = set()
    if not request.body_exists:
        return params, frozenset()
    if request.content_type == "application/json":
        try:
            body = await request.json()
        except ValueError as error:
            raise bad_request("can't parse JSON body") from error
        if not isinstance(body, dict):
            raise bad_request("the JSON body must be an object")
        params.update(body)
    elif request.content_type in ("multipart/form-data", "application/x-www-form-urlencoded"):
        for key, value in (await request.post()).items():
            if isinstance(value, web.FileField):
                files.add(key)
            else:
                params[key] = value
    return params, frozenset(files)


class TelegramServer:
    """A local Telegram Bot API. `await start()`, point aiogram at `url`, drive it through
    `control`, `await stop()` (which raises StrictModeError on invalid calls in strict mode)."""

    def __init__(self, settings: TelegramAPISettings | None = None) -> None:
        self.settings = settings or TelegramAPISettings()
        self._violations: list[str] = []
        self.bots = self._new_bots()
        self.control = control_api.Control(self)
        self._runner: web.AppRunner | None = None
        self.port = self.settings.port

    @property
    def url(self) -> str:
        """The base URL for aiogram's TelegramAPIServer.from_base()."""
        return f"http://{self.settings.host}:{self.port}"

    def app(self) -> web.Application:
        app = web.Application(client_max_size=MAX_REQUEST_BYTES)
        app.add_routes(
            [
                web.route("*", "/bot{token}/{method}", self._bot_api),
                web.get("/file/bot{token}/{path:.+}", self._file),
                web.get("/health/live", self._live),
                web.get("/chat", self._chat_page),
                *control_api.routes(self.control),
            ]
        )
        return app

    async def start(self) -> None:
        self._runner = web.AppRunner(self.app(), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.settings.host, self.settings.port)
        await site.start()
        # With port 0 the OS picked a free port: report the real one.
        self.port = int(self._runner.addresses[0][1])
        log.info("local Telegram Bot API listening on %s", self.url)

    async def stop(self) -> None:
        await self._stop_webhooks()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        self.check()

    async def reset(self, *, keep_webhooks: bool = False) -> None:
        """Forget every bot's chats, updates, calls, faults and (unless keep_webhooks: a bot
        running against this server goes on receiving updates) webhook: a fresh Telegram for
        the next test or load-test run. Invalid calls stay until checked or taken."""
        kept = {token: bot.webhook.config for token, bot in self.bots.items() if bot.webhook}
        await self._stop_webhooks()
        self.bots = self._new_bots()
        if keep_webhooks:
            for token, config in kept.items():
                await self.bots[token].set_webhook(config, drop_pending=True)

    def check(self) -> None:
        """In strict mode, raise StrictModeError for the invalid calls made since the last
        check (they are taken, so each is reported once)."""
        if self.settings.strict and self._violations:
            raise StrictModeError("invalid Bot API calls:\n" + "\n".join(self.take_violations()))

    def _new_bots(self) -> dict[str, BotState]:
        return {
            token: BotState(token, self.settings, self._violation) for token in self.settings.tokens
        }

    async def _stop_webhooks(self) -> None:
        for bot in self.bots.values():
            await bot.delete_webhook(drop_pending=False)

    def take_violations(self) -> list[str]:
        taken, self._violations = self._violations, []
        return taken

    def _violation(self, message: str) -> None:
        if self.settings.strict:
            log.error("invalid Bot API call: %s", message)
        self._violations.append(message)

    def _bot(self, token: str) -> BotState:
        bot = self.bots.get(token)
        if bot is None:
            # Only the bot id part: the rest of a token is its secret.
            self._violation(f"call with an unknown token (bot id {token.partition(':')[0]})")
            raise ApiError(401, "Unauthorized")
        return bot

    async def _bot_api(self, request: web.Request) -> web.StreamResponse:
        try:
            bot = self._bot(request.match_info["token"])
            method = request.match_info["method"]
            try:
                params, files = await _read_params(request)
            except ApiError as error:
                bot.violation(f"{method}: {error.description}")
                raise
            result = await bot.call(method, params, attachments=files)
        except ApiError as error:
            return error_response(error)
        return ok_response(result)

    async def _file(self, request: web.Request) -> web.StreamResponse:
        try:
            bot = self._bot(request.match_info["token"])
        except ApiError as error:
            return error_response(error)
        content = bot.files.content(request.match_info["path"])
        if content is None:
            return error_response(ApiError(404, "Not Found"))
        return web.Response(body=content, content_type="application/octet-stream")

    async def _chat_page(self, request: web.Request) -> web.StreamResponse:
        """The web chat: a developer plays the user through the control API."""
        return web.FileResponse(CHAT_PAGE)

    async def _live(self, request: web.Request) -> web.StreamResponse:
        return web.json_response({"status": "ok"})
