"""Invoices and their pre-checkout queries (Telegram Stars or a provider)."""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING

from aiogram.methods import AnswerPreCheckoutQuery, SendInvoice
from aiogram.types import Invoice, Message, SuccessfulPayment

from ..envelope import bad_request
from .common import check_thread, inline_markup, now, post

if TYPE_CHECKING:
    from ..bot import BotState


async def send_invoice(bot: BotState, method: SendInvoice) -> Message:
    if not 1 <= len(method.title) <= 32:
        raise bad_request("invoice title must be 1-32 characters")
    if not 1 <= len(method.description) <= 255:
        raise bad_request("invoice description must be 1-255 characters")
    if not 1 <= len(method.payload.encode()) <= 128:
        raise bad_request("invoice payload must be 1-128 bytes")
    if not method.prices:
        raise bad_request("invoice prices are empty")
    if method.currency == "XTR" and len(method.prices) != 1:
        raise bad_request("an invoice in Telegram Stars must have exactly one price")
    chat = bot.world.chat(method.chat_id)
    check_thread(chat, method.message_thread_id)
    invoice = Invoice(
        title=method.title,
        description=method.description,
        start_parameter=method.start_parameter or "",
        currency=method.currency,
        total_amount=sum(price.amount for price in method.prices),
    )
    message = post(
        bot,
        chat,
        method.message_thread_id,
        invoice=invoice,
        reply_markup=inline_markup(method.reply_markup),
    )
    bot.invoices[(chat.chat.id, message.message_id)] = method.payload
    return message


async def answer_pre_checkout_query(bot: BotState, method: AnswerPreCheckoutQuery) -> bool:
    query = bot.pre_checkout_queries.pop(method.pre_checkout_query_id, None)
    if query is None:
        raise bad_request("query is too old and response timeout expired or query ID is invalid")
    if not method.ok:
        if not method.error_message:
            raise bad_request("error_message is required when ok is false")
        return True
    # Approved: Telegram charges the user and tells the bot with a service message.
    chat = bot.world.chat(query.from_user.id)
    payment = SuccessfulPayment(
        currency=query.currency,
        total_amount=query.total_amount,
        invoice_payload=query.invoice_payload,
        telegram_payment_charge_id=f"local_{secrets.token_hex(8)}",
        provider_payment_charge_id=f"local_{secrets.token_hex(8)}",
    )
    message = {
        "message_id": chat.last_message_id + 1,
        "date": int(now().timestamp()),
        "chat": chat.chat.model_dump(mode="json", exclude_none=True),
        "from": query.from_user.model_dump(mode="json", exclude_none=True),
        "successful_payment": payment.model_dump(mode="json", exclude_none=True),
    }
    bot.push_update({"message": message})
    return True
