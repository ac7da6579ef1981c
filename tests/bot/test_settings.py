"""The bot's settings: the webhook secret is Telegram-shaped and never a default in
production."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from services.bot.settings import DEV_TOKEN, BotSettings


def test_defaults_talk_to_the_local_stand_in(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("BOT_TOKEN", "BOT_API_URL", "BOT_WEBHOOK_HOST", "BOT_WEBHOOK_PORT"):
        monkeypatch.delenv(name, raising=False)
    settings = BotSettings()
    assert settings.token.get_secret_value() == DEV_TOKEN
    assert settings.api_url == "http://127.0.0.1:27433"
    assert settings.webhook_url == "http://127.0.0.1:27432/telegram/webhook"


def test_public_url_is_what_telegram_is_told() -> None:
    settings = BotSettings(public_url="https://bot.example.com/", webhook_path="/tg")
    assert settings.webhook_url == "https://bot.example.com/tg"


def test_production_refuses_the_default_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APP_ENVIRONMENT", "production")
    monkeypatch.delenv("BOT_WEBHOOK_SECRET", raising=False)
    with pytest.raises(ValidationError, match="set BOT_WEBHOOK_SECRET"):
        BotSettings()
    real = BotSettings(
        webhook_secret="a-real-secret_of-at-least-32-chars",
        token="7000000001:AAH0real_token-from-BotFather-abcdefg",
    )
    assert real.webhook_secret


@pytest.mark.parametrize(
    ("token", "secret", "refused"),
    [
        (DEV_TOKEN, "s" * 32, "BOT_TOKEN"),
        ("12345:short", "s" * 32, "BOT_TOKEN"),
        ("7000000001:AAH0real_token-from-BotFather-abcdefg", "x", "BOT_WEBHOOK_SECRET"),
    ],
)
def test_production_refuses_development_and_weak_values(
    monkeypatch: pytest.MonkeyPatch, token: str, secret: str, refused: str
) -> None:
    monkeypatch.setenv("APP_ENVIRONMENT", "production")
    with pytest.raises(ValidationError, match=refused):
        BotSettings(token=token, webhook_secret=secret)


def test_a_secret_telegram_would_refuse_is_refused() -> None:
    with pytest.raises(ValidationError, match="BOT_WEBHOOK_SECRET"):
        BotSettings(webhook_secret="has spaces!")


def test_an_empty_staff_group_is_none_and_a_private_chat_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("BOT_STAFF_CHAT_ID", "")  # what Compose passes when it is not set
    assert BotSettings().staff_chat_id is None
    monkeypatch.setenv("BOT_STAFF_CHAT_ID", "-1001234567890")
    assert BotSettings().staff_chat_id == -1001234567890
    monkeypatch.setenv("BOT_STAFF_CHAT_ID", "4242")  # a user's private chat, not a group
    with pytest.raises(ValidationError, match="staff_chat_id"):
        BotSettings()
