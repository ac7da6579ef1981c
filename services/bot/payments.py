"""Credits for Telegram Stars: /buy lists the active products, a press sends the invoice,
the pre-checkout query is checked against the product, and successful_payment adds the
credits once."""

from __future__ import annotations

import logging
import re

from aiogram import F, Router
from aiogram.filters import Command
from aiogram.methods import AnswerCallbackQuery, AnswerPreCheckoutQuery, SendInvoice
from aiogram.types import (
    CallbackQuery,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    LabeledPrice,
    Message,
    PreCheckoutQuery,
)

from services.core.db import UnitOfWork
from services.core.flags import PAYMENTS, enabled
from services.core.schema import Product

from .replies import Replies
from .settings import BotSettings
from .texts import Text, text

log = logging.getLogger(__name__)

STARS = "XTR"
BUY = "buy:"
# Telegram's inline keyboards hold 100 buttons; a shop needs far fewer.
MAX_PRODUCTS_SHOWN = 20
# Telegram's limits for an invoice's title and description.
TITLE_LIMIT = 32
DESCRIPTION_LIMIT = 255
# The invoice payload names the product and the price the user was shown; ids and prices are
# bounded so a forged payload cannot overflow a BIGINT query parameter.
PAYLOAD = re.compile(r"product:([1-9][0-9]{0,17}):([1-9][0-9]{0,9})")
CALLBACK = re.compile(re.escape(BUY) + r"([1-9][0-9]{0,17})")


def _payload(product: Product) -> str:
    return f"product:{product.id}:{product.price_stars}"


def _parse_payload(payload: str) -> tuple[int, int] | None:
    """(product id, price) of an invoice this bot sent; None for anything else."""
    match = PAYLOAD.fullmatch(payload)
    return (int(match[1]), int(match[2])) if match else None


def _clip(value: str, limit: int) -> str:
    """`value` stripped and cut to `limit` UTF-16 code units (how Telegram counts length;
    never fewer than Python's characters), an ellipsis marking a cut."""
    value = value.strip()
    if len(value.encode("utf-16-le")) // 2 <= limit:
        return value
    kept: list[str] = []
    used = 1  # the ellipsis
    for char in value:
        width = 2 if ord(char) > 0xFFFF else 1
        if used + width > limit:
            break
        kept.append(char)
        used += width
    return "".join(kept).rstrip() + "…"


def _offer(language: str, product: Product) -> str:
    return text(
        language,
        Text.PRODUCT_BUTTON,
        title=product.title,
        credits=product.credits,
        price=product.price_stars,
    )


def _invoice(chat_id: int, language: str, product: Product) -> SendInvoice:
    title = _clip(product.title, TITLE_LIMIT) or product.code[:TITLE_LIMIT]
    # Telegram requires a description; a product without one is described by its offer.
    description = _clip(product.description, DESCRIPTION_LIMIT) or _clip(
        _offer(language, product), DESCRIPTION_LIMIT
    )
    # Telegram Stars need no payment provider: provider_token stays out of the call.
    return SendInvoice(
        chat_id=chat_id,
        title=title,
        description=description,
        payload=_payload(product),
        currency=STARS,
        prices=[LabeledPrice(label=title, amount=product.price_stars)],
    )


async def buy(
    message: Message, uow: UnitOfWork, user_id: int | None, language: str, replies: Replies
) -> None:
    if user_id is None:
        return
    if not await enabled(uow, PAYMENTS):
        replies.add(message.chat.id, text(language, Text.BUY_PAUSED))
        return
    products = await uow.products.active(MAX_PRODUCTS_SHOWN)
    if not products:
        replies.add(message.chat.id, text(language, Text.BUY_NONE))
        return
    buttons = [
        [InlineKeyboardButton(text=_offer(language, product), callback_data=f"{BUY}{product.id}")]
        for product in products
    ]
    replies.add(
        message.chat.id,
        text(language, Text.BUY_CHOOSE),
        InlineKeyboardMarkup(inline_keyboard=buttons),
    )


async def choose(query: CallbackQuery, uow: UnitOfWork, language: str, replies: Replies) -> None:
    replies.call(AnswerCallbackQuery(callback_query_id=query.id))
    # Buttons are pressed in the private chat, whose id is the user's.
    chat_id = query.message.chat.id if query.message else query.from_user.id
    match = CALLBACK.fullmatch(query.data or "")
    product = await uow.products.find(int(match[1])) if match else None
    if product is None or not product.is_active:
        replies.add(chat_id, text(language, Text.PRODUCT_GONE))
        return
    replies.call(_invoice(chat_id, language, product))


async def pre_checkout(
    query: PreCheckoutQuery, uow: UnitOfWork, language: str, replies: Replies
) -> None:
    """Telegram asks before charging: only an invoice whose product is still on sale at the
    price it showed may be paid, and only while purchases are not paused."""
    reason = await _refusal(uow, query)
    if reason is not None:
        log.info(
            "pre-checkout %s refused (%s): payload %r", query.id, reason, query.invoice_payload
        )
        replies.call(refuse(query, language, reason))
        return
    replies.call(AnswerPreCheckoutQuery(pre_checkout_query_id=query.id, ok=True))


async def _refusal(uow: UnitOfWork, query: PreCheckoutQuery) -> Text | None:
    """Why the query must be refused, or None when it may be paid."""
    if not await enabled(uow, PAYMENTS):
        return Text.CHECKOUT_PAUSED
    parsed = _parse_payload(query.invoice_payload)
    product = await uow.products.find(parsed[0]) if parsed else None
    payable = (
        parsed is not None
        and product is not None
        and product.is_active
        and query.currency == STARS
        and product.price_stars == parsed[1] == query.total_amount
    )
    return None if payable else Text.CHECKOUT_CHANGED


def refuse(query: PreCheckoutQuery, language: str, reason: Text) -> AnswerPreCheckoutQuery:
    """The answer that fails the payment, telling the user why (Telegram shows it)."""
    return AnswerPreCheckoutQuery(
        pre_checkout_query_id=query.id, ok=False, error_message=text(language, reason)
    )


async def paid(
    message: Message, uow: UnitOfWork, user_id: int | None, language: str, replies: Replies
) -> None:
    """Records the payment and adds its credits in the update's transaction, once per charge
    id: Telegram may deliver the same payment again under a new update id.

    The user has been charged by now, so the payment is always recorded and never refused.
    The credits are the product's at this moment: if staff changed the product in the
    seconds between the pre-checkout answer and this message (price, credits, taken off
    sale), the user still gets the product's current credits for what they paid, and
    `amount` keeps what Telegram says was paid. A product that no longer exists at all (the
    admin API cannot delete one) leaves the payment recorded with no credits, logged for
    staff to settle, and the user told so by "0 credits added"."""
    payment = message.successful_payment
    if payment is None or user_id is None:  # invoices are sent only in private chats
        return
    parsed = _parse_payload(payment.invoice_payload)
    product = await uow.products.find(parsed[0]) if parsed else None
    credits = product.credits if product else 0
    applied = await uow.billing.apply_payment(
        user_id,
        telegram_payment_charge_id=payment.telegram_payment_charge_id,
        provider_payment_charge_id=payment.provider_payment_charge_id or None,
        amount=payment.total_amount,
        credits=credits,
        product_id=product.id if product else None,
        currency=payment.currency,
    )
    if not applied:
        log.info("payment %s delivered again; applied before", payment.telegram_payment_charge_id)
        return
    if product is None:
        log.error(
            "payment %s of user %s has no product (payload %r): recorded without credits",
            payment.telegram_payment_charge_id,
            user_id,
            payment.invoice_payload,
        )
    balance = (await uow.users.get(user_id)).credits
    replies.add(message.chat.id, text(language, Text.PAID, credits=credits, balance=balance))


def router(settings: BotSettings) -> Router:
    router = Router(name="payments")
    router.message.register(buy, Command("buy"), F.chat.type == "private")
    router.callback_query.register(choose, F.data.startswith(BUY))
    router.pre_checkout_query.register(pre_checkout)
    router.message.register(paid, F.successful_payment)
    return router
