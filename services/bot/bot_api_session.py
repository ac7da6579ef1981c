"""aiogram's aiohttp session, speaking JSON to the Bot API in both directions.

aiogram sends every call as a form: urlencoded, each nested object (a keyboard) a JSON string
inside it, through aiohttp's FormData, which draws a multipart boundary from uuid4 even for a
form it urlencodes; and it reads each answer with the standard library's json. Profiled under
`make bench-bot`, that was about a fifth of the CPU of sending a reply. Here a call without
files is one JSON body (the Bot API takes application/json) and answers are parsed by
pydantic-core's parser, which the models are made with anyway. A call with files goes as
aiogram sends it, a multipart form.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import TelegramNetworkError
from aiogram.methods import TelegramMethod
from aiogram.methods.base import TelegramType
from aiohttp import ClientError
from pydantic_core import from_json, to_json

if TYPE_CHECKING:
    from aiogram import Bot

JSON_HEADERS = {"Content-Type": "application/json"}


class JsonSession(AiohttpSession):
    def __init__(self, api: TelegramAPIServer, timeout: float) -> None:
        super().__init__(api=api, json_loads=from_json, timeout=timeout)

    def json_body(self, bot: Bot, method: TelegramMethod[Any]) -> bytes | None:
        """The call as a JSON object with the fields aiogram's form would carry, defaults
        resolved; None when it has files."""
        files: dict[str, Any] = {}
        body = {}
        for key, value in method.model_dump(warnings=False).items():
            prepared = self.prepare_value(value, bot=bot, files=files, _dumps_json=False)
            # What the form leaves out: None and empty strings (false and 0 are sent).
            if prepared is not None and prepared != "":
                body[key] = prepared
        return None if files else to_json(body)

    async def make_request(
        self,
        bot: Bot,
        method: TelegramMethod[TelegramType],
        timeout: int | None = None,  # noqa: ASYNC109 (aiogram's signature)
    ) -> TelegramType:
        body = self.json_body(bot, method)
        if body is None:
            return await super().make_request(bot, method, timeout)
        session = await self.create_session()
        url = self.api.api_url(token=bot.token, method=method.__api_method__)
        # As aiogram's make_request, from here on: the same timeout and the same errors.
        try:
            async with session.post(
                url,
                data=body,
                headers=JSON_HEADERS,
                timeout=self.timeout if timeout is None else timeout,  # type: ignore[arg-type]
            ) as response:
                raw = await response.text()
        except TimeoutError as error:
            raise TelegramNetworkError(method=method, message="Request timeout error") from error
        except ClientError as error:
            message = f"{type(error).__name__}: {error}"
            raise TelegramNetworkError(method=method, message=message) from error
        answer = self.check_response(
            bot=bot, method=method, status_code=response.status, content=raw
        )
        return cast(TelegramType, answer.result)
