"""getFile: where a file the bot was sent can be downloaded."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiogram.methods import GetFile
from aiogram.types import File

if TYPE_CHECKING:
    from ..bot import BotState


async def get_file(bot: BotState, method: GetFile) -> File:
    return bot.files.get(method.file_id)
