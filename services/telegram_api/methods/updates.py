"""Who the bot is and how it gets its updates: getMe, getUpdates, the webhook methods."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from aiogram.methods import DeleteWebhook, GetMe, GetUpdates, GetWebhookInfo, SetWebhook
from aiogram.types import Update, User, WebhookInfo

from ..envelope import ApiError, bad_request
from ..webhook import WebhookConfig

if TYPE_CHECKING:
    from ..bot import BotState

SECRET_TOKEN = re.compile(r"[A-Za-z0-9_-]{1,256}")


async def get_me(bot: BotState, method: GetMe) -> User:
    return bot.me


async def get_updates(bot: BotState, method: GetUpdates) -> list[Update]:
    if bot.webhook is not None:
        raise ApiError(
            409,
            "Conflict: can't use getUpdates method while webhook is active; "
            "use deleteWebhook to delete the webhook first",
        )
    limit = min(max(method.limit or 100, 1), 100)
    return await bot.updates.get(
        method.offset or 0, limit, float(method.timeout or 0), method.allowed_updates
    )


async def set_webhook(bot: BotState, method: SetWebhook) -> bool:
    if not method.url:
        await bot.delete_webhook(bool(method.drop_pending_updates))
        return True
    if not method.url.startswith(("http://", "https://")):
        raise bad_request("bad webhook: An HTTPS URL must be provided for webhook")
    if method.secret_token is not None and not SECRET_TOKEN.fullmatch(method.secret_token):
        raise bad_request("secret token contains unallowed characters")
    max_connections = method.max_connections or 40
    if not 1 <= max_connections <= 100:
        raise bad_request("bad webhook: max_connections must be between 1 and 100")
    config = WebhookConfig(
        url=method.url,
        secret_token=method.secret_token,
        max_connections=max_connections,
        allowed_updates=method.allowed_updates,
    )
    await bot.set_webhook(config, bool(method.drop_pending_updates))
    return True


async def delete_webhook(bot: BotState, method: DeleteWebhook) -> bool:
    await bot.delete_webhook(bool(method.drop_pending_updates))
    return True


async def get_webhook_info(bot: BotState, method: GetWebhookInfo) -> WebhookInfo:
    pending = len(bot.updates.pending())
    if bot.webhook is None:
        return WebhookInfo(url="", has_custom_certificate=False, pending_update_count=pending)
    config = bot.webhook.config
    return WebhookInfo(
        url=config.url,
        has_custom_certificate=False,
        pending_update_count=pending,
        last_error_date=(
            datetime.fromtimestamp(config.last_error_date, UTC) if config.last_error_date else None
        ),
        last_error_message=config.last_error_message,
        max_connections=config.max_connections,
        allowed_updates=config.allowed_updates,
    )
