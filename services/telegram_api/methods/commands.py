"""The bot's command menu (setMyCommands and friends), per scope and language."""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING

from aiogram.methods import DeleteMyCommands, GetMyCommands, SetMyCommands
from aiogram.types import BotCommand, BotCommandScopeUnion

from ..envelope import bad_request

if TYPE_CHECKING:
    from ..bot import BotState

COMMAND = re.compile(r"[a-z0-9_]{1,32}")
MAX_COMMANDS = 100


def _key(scope: BotCommandScopeUnion | None, language_code: str | None) -> str:
    scope_json = scope.model_dump(mode="json", exclude_none=True) if scope else {"type": "default"}
    return json.dumps([scope_json, language_code or ""], sort_keys=True)


async def set_my_commands(bot: BotState, method: SetMyCommands) -> bool:
    if len(method.commands) > MAX_COMMANDS:
        raise bad_request("too many commands")
    for command in method.commands:
        if not COMMAND.fullmatch(command.command):
            raise bad_request("BOT_COMMAND_INVALID")
        if not 1 <= len(command.description) <= 256:
            raise bad_request("command description must be 1-256 characters")
    bot.commands[_key(method.scope, method.language_code)] = list(method.commands)
    return True


async def get_my_commands(bot: BotState, method: GetMyCommands) -> list[BotCommand]:
    return bot.commands.get(_key(method.scope, method.language_code), [])


async def delete_my_commands(bot: BotState, method: DeleteMyCommands) -> bool:
    bot.commands.pop(_key(method.scope, method.language_code), None)
    return True
