"""Settings of the bot process (environment prefix BOT_)."""

from __future__ import annotations

import re
from enum import StrEnum

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings

from services.core.settings import (
    DEV_SECRET,
    AppSettings,
    Environment,
    InsecureSettingsError,
    settings_config,
)

# The local Bot API stand-in's development token (services/telegram_api/settings.py,
# DEV_TOKEN). Duplicated, not imported: services never import each other.
DEV_TOKEN = "1000000001:local-dev-token-not-a-secret"
# What Telegram accepts as a webhook's secret_token.
SECRET_TOKEN = re.compile(r"[A-Za-z0-9_-]{1,256}")
# Outside development: a secret that cannot be guessed, and a token in the shape BotFather
# issues ("<bot id>:<35 characters>").
MIN_WEBHOOK_SECRET_LENGTH = 32
BOT_TOKEN = re.compile(r"[0-9]{5,20}:[A-Za-z0-9_-]{30,}")


class Mode(StrEnum):
    WEBHOOK = "webhook"  # production: Telegram POSTs updates to the webhook server
    POLLING = "polling"  # development behind NAT: the bot asks with getUpdates


class BotSettings(BaseSettings):
    # An empty variable counts as unset (Compose passes BOT_STAFF_CHAT_ID= when not set).
    model_config = settings_config("BOT_", env_ignore_empty=True)

    token: SecretStr = SecretStr(DEV_TOKEN)
    mode: Mode = Mode.WEBHOOK
    # Base URL of the Bot API; the local stand-in by default, https://api.telegram.org in
    # production.
    api_url: str = "http://127.0.0.1:27433"
    # Where the webhook server listens (the local stack sets BOT_WEBHOOK_HOST and _PORT).
    webhook_host: str = "127.0.0.1"
    webhook_port: int = Field(27432, ge=0, le=65535)
    webhook_path: str = Field("/telegram/webhook", pattern=r"^/\S*$")
    # Telegram sends it in X-Telegram-Bot-Api-Secret-Token: 1 to 256 of A-Z a-z 0-9 _ -.
    webhook_secret: SecretStr = SecretStr(DEV_SECRET)
    # Where /health and /metrics are served: never the webhook's port, which is published.
    metrics_host: str = "127.0.0.1"
    metrics_port: int = Field(27434, ge=0, le=65535)
    # The URL Telegram reaches the webhook server at (behind a proxy in production); by
    # default the listening address itself, which is what the local stack uses.
    public_url: str | None = None
    # Register the webhook with the Bot API at start.
    set_webhook: bool = True
    # Per-user throttling: sustained updates per minute, and a burst allowed at once.
    throttle_per_minute: int = Field(30, ge=1)
    throttle_burst: int = Field(10, ge=1)
    # Outbox delivery: messages per second in all (Telegram allows about 30), seconds between
    # two messages to one chat (Telegram: one per second), seconds between polls when idle.
    outbox_per_second: float = Field(25.0, gt=0)
    outbox_chat_interval: float = Field(1.0, ge=0)
    outbox_poll_seconds: float = Field(1.0, gt=0)
    # Off only where something else owns the outbox (the test suite's stack, whose tests
    # inspect and deliver outbox rows themselves).
    outbox_delivery: bool = True
    # Seconds a Bot API request may take before it is given up: aiogram's session timeout.
    # A request that went out and got no answer by then is in doubt (Telegram may have acted
    # on it) and is never made again (docs/chaos.md, services/bot/sending.py).
    api_timeout_seconds: int = Field(60, ge=1)
    # Seconds the webhook waits on an update's replies after its commit; a reply Telegram has
    # not answered by then is handed to the outbox, held until its request settles, so that a
    # slow Bot API holds neither Telegram's delivery nor the chat's next update.
    reply_wait_seconds: float = Field(5.0, gt=0)
    # Seconds SIGTERM waits for updates in flight before the server closes.
    shutdown_timeout: float = Field(30.0, gt=0)
    # Support: the staff group (a forum supergroup, id -100...) where each user's tickets get
    # a topic; unset, tickets are answered through the admin API only.
    staff_chat_id: int | None = Field(None, lt=0)
    # Bookings (the business hours are the runtime setting `booking.hours`, shared with the
    # admin API: services/core/schedule.py): how many days ahead /book offers, how many
    # upcoming bookings one user may hold, and how long before an appointment its reminder
    # goes out.
    booking_days: int = Field(7, ge=1, le=60)
    booking_max_per_user: int = Field(3, ge=1)
    booking_reminder_minutes: int = Field(60, ge=1)
    # Polling mode: seconds one getUpdates waits for updates (Telegram's long polling).
    polling_timeout: int = Field(25, ge=0, le=50)

    @property
    def webhook_url(self) -> str:
        base = self.public_url or f"http://{self.webhook_host}:{self.webhook_port}"
        return base.rstrip("/") + self.webhook_path

    @model_validator(mode="after")
    def _secrets(self) -> BotSettings:
        # Messages name the variable and never the value: both are secrets.
        environment = AppSettings().environment
        secret = self.webhook_secret.get_secret_value()
        if secret and not SECRET_TOKEN.fullmatch(secret):
            raise ValueError("BOT_WEBHOOK_SECRET: use 1 to 256 of A-Z a-z 0-9 _ -")
        if environment is Environment.DEVELOPMENT:
            return self
        bad = []
        if secret == DEV_SECRET or len(secret) < MIN_WEBHOOK_SECRET_LENGTH:
            bad.append(
                f"BOT_WEBHOOK_SECRET (at least {MIN_WEBHOOK_SECRET_LENGTH} of A-Z a-z 0-9 _ -)"
            )
        token = self.token.get_secret_value()
        if token == DEV_TOKEN or not BOT_TOKEN.fullmatch(token):
            bad.append("BOT_TOKEN (the token BotFather gave the bot)")
        if bad:
            raise InsecureSettingsError(
                f"development or weak values are refused in {environment}: set " + ", ".join(bad)
            )
        return self
