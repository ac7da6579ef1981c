"""`python -m services.bot`: serve the webhook until SIGTERM."""

from __future__ import annotations

import asyncio
import logging

from services.core.entry import parse_command_line
from services.core.settings import AppSettings, DatabaseSettings

from .runner import run
from .settings import BotSettings


def main() -> None:
    parse_command_line(
        "services.bot",
        "The Telegram bot: serves the webhook (or polls, BOT_MODE=polling), /health and "
        "/metrics, and delivers the outbox, until SIGTERM.",
        [AppSettings, BotSettings, DatabaseSettings],
    )
    logging.basicConfig(
        level=AppSettings().log_level, format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    # aiogram logs every update at INFO; the bot's metrics count them instead.
    logging.getLogger("aiogram.event").setLevel(logging.WARNING)
    asyncio.run(run(BotSettings()))


if __name__ == "__main__":
    main()
