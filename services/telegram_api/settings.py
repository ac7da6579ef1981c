"""Settings of the local Telegram Bot API stand-in (environment prefix TELEGRAM_API_)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

# A token in Telegram's shape ("<bot id>:<secret>"), so aiogram's token check accepts it.
DEV_TOKEN = "1000000001:local-dev-token-not-a-secret"


class TelegramAPISettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="TELEGRAM_API_", env_file=None, extra="ignore", frozen=True
    )

    host: str = "127.0.0.1"
    port: int = Field(27433, ge=0, le=65535)
    # Bot tokens this server accepts, comma separated; each token is a separate bot with its
    # own chats, updates and webhook. Any other token gets 401 Unauthorized.
    tokens: Annotated[tuple[str, ...], NoDecode] = (DEV_TOKEN,)
    # Strict mode: an invalid call (unknown method or parameter, wrong token, a method this
    # stand-in does not implement) is a bug in the bot. Tests fail on stop(); the process
    # logs it and exits non-zero when stopped.
    strict: bool = True
    # Multiplies the webhook retry backoff (1 s doubling to 60 s); tests compress it.
    time_scale: float = Field(1.0, gt=0)
    # Telegram's send limits (limits.py: 30 messages/s overall, 1/s per chat, 20/min per
    # group) answered with 429 retry_after; off by default so tests are not paced by them.
    send_limits: bool = False
    # Seconds one webhook delivery may take before it counts as failed.
    webhook_timeout: float = Field(60.0, gt=0)
    # In-memory state is bounded so a long load test cannot exhaust the host (about 9 KB per
    # sent message): the newest calls in the log, the newest messages of each chat.
    call_log_size: int = Field(10_000, ge=1)
    chat_history_size: int = Field(500, ge=1)
    # Where the highest message id each bot was handed out is kept, so a restarted stand-in
    # continues above it as Telegram does (the bot's database keeps topic and message ids).
    # Unset: nothing is kept and chats start at message id 1.
    state_dir: Path | None = None
    bot_first_name: str = "Botstack Local"
    bot_username: str = "botstack_local_bot"

    @field_validator("tokens", mode="before")
    @classmethod
    def _split_tokens(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(token.strip() for token in value.split(",") if token.strip())
        return value

    @field_validator("tokens")
    @classmethod
    def _check_tokens(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise ValueError("at least one bot token is required")
        for token in value:
            bot_id, _, secret = token.partition(":")
            if not bot_id.isdigit() or not secret:
                raise ValueError(f"token {token!r} is not of the form <bot id>:<secret>")
        return value
