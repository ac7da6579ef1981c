"""`python -m services.bot`: serve the webhook until SIGTERM."""

from __future__ import annotations

import asyncio
import logging

from services.core.settings import AppSettings

from .runner import run
from .settings import BotSettings


def main() -> None:
    logging.basicConfig(
        level=AppSettings().log_level, format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    # aiogram logs every update at INFO; the bot's metrics count them instead.
    logging.getLogger("aiogram.event").setLevel(logging.WARNING)
    asyncio.run(run(BotSettings()))


if __name__ == "__main__":
    main()
