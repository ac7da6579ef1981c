"""Support tickets: a user opens one and writes to it, each message is copied into the user's
forum topic in the staff group, and staff answer, assign, resolve and close from there."""

from __future__ import annotations

from aiogram import Router

from .settings import BotSettings


def router(settings: BotSettings) -> Router:
    return Router(name="support")
