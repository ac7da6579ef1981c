"""Run the local Telegram Bot API as a service: `python -m services.telegram_api`.

Stops on SIGTERM or SIGINT; in strict mode it exits with status 1 if the bot made invalid
calls, so a stack run fails visibly.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys

from services.core.entry import parse_command_line

from .server import StrictModeError, TelegramServer
from .settings import TelegramAPISettings


async def _serve(settings: TelegramAPISettings) -> int:
    server = TelegramServer(settings)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    await server.start()
    await stopping.wait()
    try:
        await server.stop()
    except StrictModeError as error:
        logging.getLogger(__name__).error("%s", error)
        return 1
    return 0


def main() -> int:
    parse_command_line(
        "services.telegram_api",
        "The local Telegram Bot API stand-in: the Bot API methods the bot uses, a web chat "
        "at /chat, and a control API (/__control/...) for tests and load tests.",
        [TelegramAPISettings],
    )
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    return asyncio.run(_serve(TelegramAPISettings()))


if __name__ == "__main__":
    sys.exit(main())
