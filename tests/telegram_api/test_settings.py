"""TELEGRAM_API_* settings as an operator writes them."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from services.telegram_api import TelegramAPISettings


def test_defaults_serve_one_development_bot_on_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HOST", "PORT", "STRICT", "TOKENS"):
        monkeypatch.delenv(f"TELEGRAM_API_{name}", raising=False)
    settings = TelegramAPISettings()
    assert (settings.host, settings.port, settings.strict) == ("127.0.0.1", 27433, True)
    assert len(settings.tokens) == 1


def test_tokens_from_a_comma_separated_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TELEGRAM_API_TOKENS", "123:abc, 456:def")
    monkeypatch.setenv("TELEGRAM_API_TIME_SCALE", "0.01")
    settings = TelegramAPISettings()
    assert settings.tokens == ("123:abc", "456:def")
    assert settings.time_scale == 0.01


def test_a_token_without_bot_id_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TELEGRAM_API_TOKENS", "not-a-token")
    with pytest.raises(ValidationError, match="<bot id>:<secret>"):
        TelegramAPISettings()
