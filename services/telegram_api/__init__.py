"""A local implementation of the Telegram Bot API for tests, load tests and the no-token
sandbox: real aiogram code talks to it over HTTP (see README, "Local Telegram Bot API")."""

from .faults import FaultKind
from .server import StrictModeError, TelegramServer
from .settings import TelegramAPISettings

__all__ = ["FaultKind", "StrictModeError", "TelegramAPISettings", "TelegramServer"]
