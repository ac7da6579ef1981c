"""Credits for Telegram Stars, end to end: /buy, the invoice, the pre-checkout check and the
successful payment, applied once however often Telegram delivers it."""

from __future__ import annotations

import secrets
from typing import Any

import asyncpg
import pytest

from services.bot.texts import Text, text
from services.telegram_api import TelegramServer
from services.telegram_api.envelope import to_json

from .conftest import RunningBot, StartBot, count, eventually

USER = 6161


async def _product(
    owner: asyncpg.Connection,
    code: str,
    *,
    title: str = "Starter",
    description: str = "",
    price: int = 50,
    credits: int = 100,
    active: bool = True,
) -> int:
    product_id: int = await owner.fetchval(
        "INSERT INTO products (code, title, description, price_stars, credits, is_active) "
        "VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
        code,
        title,
        description,
        price,
        credits,
        active,
    )
    return product_id


def _sender(language_code: str | None) -> dict[str, Any]:
    sender: dict[str, Any] = {"id": USER, "is_bot": False, "first_name": "Ann"}
    if language_code:
        sender["language_code"] = language_code
    return sender


def _next_message_id(server: TelegramServer) -> int:
    shown = server.control.messages(USER)
    return shown[-1].message_id + 1 if shown else 1


def _send_buy(server: TelegramServer, language_code: str | None) -> None:
    """The user sends /buy from a Telegram app set to `language_code`."""
    server.control.push_update(
        {
            "message": {
                "message_id": _next_message_id(server),
                "date": 1_700_000_000,
                "chat": {"id": USER, "type": "private", "first_name": "Ann"},
                "from": _sender(language_code),
                "text": "/buy",
                "entities": [{"type": "bot_command", "offset": 0, "length": 4}],
            }
        }
    )


def _press(server: TelegramServer, message_id: int, data: str, language_code: str | None) -> None:
    pressed = next(
        shown for shown in server.control.messages(USER) if shown.message_id == message_id
    )
    server.control.push_update(
        {
            "callback_query": {
                "id": secrets.token_hex(8),
                "from": _sender(language_code),
                "chat_instance": str(USER),
                "message": to_json(pressed),
                "data": data,
            }
        }
    )


def _pay(server: TelegramServer, invoice_message_id: int, language_code: str | None) -> None:
    """The user pays the invoice: the bot gets a pre-checkout query, and a successful_payment
    message once it answers ok."""
    invoice = next(
        shown for shown in server.control.messages(USER) if shown.message_id == invoice_message_id
    )
    assert invoice.invoice is not None
    server.control.push_update(
        {
            "pre_checkout_query": {
                "id": secrets.token_hex(8),
                "from": _sender(language_code),
                "currency": invoice.invoice.currency,
                "total_amount": invoice.invoice.total_amount,
                "invoice_payload": server.control.bot().invoices[(USER, invoice_message_id)],
            }
        }
    )


def _buttons(bot: RunningBot) -> list[tuple[str, str]]:
    """(text, callback data) of the buttons under the bot's last message."""
    markup = bot.sent(USER)[-1].result["reply_markup"]["inline_keyboard"]
    return [(button["text"], button["callback_data"]) for row in markup for button in row]


async def _invoice(
    bot: RunningBot, server: TelegramServer, product_id: int, language_code: str | None = None
) -> int:
    """/buy, then a press on the product's button; the invoice message's id."""
    before = len(bot.texts(USER))
    _send_buy(server, language_code)
    await eventually(lambda: len(bot.texts(USER)) == before + 1)
    invoices = len(server.control.calls(USER, "sendInvoice"))
    _press(server, bot.sent(USER)[-1].result["message_id"], f"buy:{product_id}", language_code)
    await eventually(lambda: len(server.control.calls(USER, "sendInvoice")) == invoices + 1)
    call = server.control.calls(USER, "sendInvoice")[-1]
    assert call.ok
    message_id: int = call.result["message_id"]
    return message_id


def _checkout_answers(server: TelegramServer) -> list[dict[str, Any]]:
    return [call.params for call in server.control.calls(USER, "answerPreCheckoutQuery")]


async def _balance(owner: asyncpg.Connection) -> int:
    credits: int = await owner.fetchval("SELECT credits FROM users WHERE telegram_id = $1", USER)
    return credits


async def test_buy_lists_the_active_products_and_a_press_sends_a_stars_invoice(
    start_bot: StartBot, server: TelegramServer, owner: asyncpg.Connection
) -> None:
    bot = await start_bot()
    cheap = await _product(owner, "cheap", title="Starter", price=50, credits=100)
    await _product(owner, "old", title="Retired", price=10, credits=10, active=False)
    big = await _product(
        owner,
        "big",
        title="A very large package with a long name",
        description="x" * 300,
        price=200,
        credits=500,
    )
    server.control.send_text(USER, "/buy")
    await eventually(lambda: len(bot.texts(USER)) == 1)
    assert bot.texts(USER)[0] == "Choose a package:"
    assert _buttons(bot) == [
        ("Starter: 100 credits for 50 ⭐", f"buy:{cheap}"),
        ("A very large package with a long name: 500 credits for 200 ⭐", f"buy:{big}"),
    ]

    message_id = bot.sent(USER)[-1].result["message_id"]
    server.control.press_button(USER, message_id, f"buy:{big}")
    await eventually(lambda: len(server.control.calls(USER, "sendInvoice")) == 1)
    invoice = server.control.calls(USER, "sendInvoice")[0]
    assert invoice.ok
    assert invoice.params["currency"] == "XTR"
    assert [price["amount"] for price in invoice.params["prices"]] == [200]
    assert "provider_token" not in invoice.params
    # Long titles and descriptions are cut to what Telegram takes.
    assert len(invoice.params["title"]) == 32
    assert invoice.params["title"].endswith("…")
    assert len(invoice.params["description"]) == 255
    assert len(server.control.calls(USER, "answerCallbackQuery")) == 1
    # The chat shows an invoice the user can pay.
    shown = server.control.messages(USER)[-1]
    assert shown.invoice is not None
    assert shown.invoice.total_amount == 200


async def test_paying_adds_the_credits_once_however_often_the_payment_is_delivered(
    start_bot: StartBot, server: TelegramServer, owner: asyncpg.Connection
) -> None:
    bot = await start_bot()
    product_id = await _product(owner, "starter", price=50, credits=100)
    invoice_id = await _invoice(bot, server, product_id)

    server.control.pay_invoice(USER, invoice_id)
    await eventually(lambda: len(bot.texts(USER)) == 2)
    assert _checkout_answers(server)[0]["ok"] is True
    assert bot.texts(USER)[1] == "Payment received: 100 credits added. Your balance: 100."
    payment = await owner.fetchrow("SELECT * FROM payments")
    assert payment is not None
    assert (payment["product_id"], payment["amount"], payment["credits"]) == (product_id, 50, 100)
    assert payment["currency"] == "XTR"
    assert payment["telegram_payment_charge_id"].startswith("local_")
    change = await owner.fetchrow("SELECT * FROM credit_changes")
    assert change is not None
    assert (change["delta"], change["balance_after"], change["payment_id"]) == (
        100,
        100,
        payment["id"],
    )
    assert await _balance(owner) == 100

    # Telegram delivers the same successful_payment again, under new update ids, twice at
    # once: nothing more is recorded, added or said.
    paid = next(shown for shown in server.control.messages(USER) if shown.successful_payment)
    handled = bot.updates("handled")
    for _ in range(2):
        server.control.push_update({"message": to_json(paid)})
    await eventually(lambda: bot.updates("handled") == handled + 2)
    assert await count(owner, "SELECT count(*) FROM payments") == 1
    assert await count(owner, "SELECT count(*) FROM credit_changes") == 1
    assert await _balance(owner) == 100
    assert len(bot.texts(USER)) == 2

    # A second purchase is a new charge: credits are added again.
    invoice_id = await _invoice(bot, server, product_id)
    server.control.pay_invoice(USER, invoice_id)
    await eventually(lambda: len(bot.texts(USER)) == 4)
    assert bot.texts(USER)[3] == "Payment received: 100 credits added. Your balance: 200."
    assert await count(owner, "SELECT count(*) FROM payments") == 2


@pytest.mark.parametrize(
    "change",
    [
        "UPDATE products SET is_active = false",
        "UPDATE products SET price_stars = 60",
    ],
    ids=["taken-off-sale", "repriced"],
)
async def test_an_invoice_whose_product_changed_is_not_paid(
    start_bot: StartBot, server: TelegramServer, owner: asyncpg.Connection, change: str
) -> None:
    bot = await start_bot()
    product_id = await _product(owner, "starter", price=50, credits=100)
    invoice_id = await _invoice(bot, server, product_id)
    await owner.execute(change)

    server.control.pay_invoice(USER, invoice_id)
    await eventually(lambda: len(_checkout_answers(server)) == 1)
    answer = _checkout_answers(server)[0]
    assert answer["ok"] is False
    assert answer["error_message"] == text("en", Text.CHECKOUT_CHANGED)
    assert await count(owner, "SELECT count(*) FROM payments") == 0
    assert await _balance(owner) == 0
    assert not any(shown.successful_payment for shown in server.control.messages(USER))


async def test_nothing_on_sale_and_a_button_of_a_product_gone_are_explained(
    start_bot: StartBot, server: TelegramServer, owner: asyncpg.Connection
) -> None:
    bot = await start_bot()
    product_id = await _product(owner, "starter")
    server.control.send_text(USER, "/buy")
    await eventually(lambda: len(bot.texts(USER)) == 1)
    message_id = bot.sent(USER)[-1].result["message_id"]
    await owner.execute("UPDATE products SET is_active = false")

    server.control.press_button(USER, message_id, f"buy:{product_id}")
    await eventually(lambda: len(bot.texts(USER)) == 2)
    assert bot.texts(USER)[1] == text("en", Text.PRODUCT_GONE)
    assert server.control.calls(USER, "sendInvoice") == []
    assert len(server.control.calls(USER, "answerCallbackQuery")) == 1

    server.control.send_text(USER, "/buy")
    await eventually(lambda: len(bot.texts(USER)) == 3)
    assert bot.texts(USER)[2] == "Nothing is for sale right now."
    assert bot.sent(USER)[-1].params.get("reply_markup") is None


async def test_a_russian_user_buys_in_russian(
    start_bot: StartBot, server: TelegramServer, owner: asyncpg.Connection
) -> None:
    bot = await start_bot()
    product_id = await _product(owner, "starter", title="Старт", price=50, credits=100)
    invoice_id = await _invoice(bot, server, product_id, language_code="ru")
    assert bot.texts(USER)[0] == "Выберите пакет:"
    assert _buttons(bot) == [("Старт: 100 кредитов за 50 ⭐", f"buy:{product_id}")]
    # A product without a description is described by its offer, in the user's language.
    invoice = server.control.calls(USER, "sendInvoice")[0]
    assert invoice.params["description"] == "Старт: 100 кредитов за 50 ⭐"

    _pay(server, invoice_id, language_code="ru")
    await eventually(lambda: len(bot.texts(USER)) == 2)
    assert bot.texts(USER)[1] == "Оплата получена: добавлено 100 кредитов. Ваш баланс: 100."

    invoice_id = await _invoice(bot, server, product_id, language_code="ru")
    await owner.execute("UPDATE products SET price_stars = 70")
    _pay(server, invoice_id, language_code="ru")
    await eventually(lambda: len(_checkout_answers(server)) == 2)
    refused = _checkout_answers(server)[1]
    assert refused["ok"] is False
    assert refused["error_message"].startswith("Пакет изменился")


async def test_forged_buttons_and_payloads_are_refused_and_a_charge_is_never_lost(
    start_bot: StartBot, server: TelegramServer, owner: asyncpg.Connection
) -> None:
    bot = await start_bot()
    server.control.send_text(USER, "/start")
    await eventually(lambda: len(bot.texts(USER)) == 1)
    start = server.control.messages(USER)[-1].message_id
    for data in ("buy:12345", "buy:1" + "0" * 30, "buy:x"):
        _press(server, start, data, None)
    server.control.push_update(
        {
            "pre_checkout_query": {
                "id": secrets.token_hex(8),
                "from": _sender(None),
                "currency": "XTR",
                "total_amount": 50,
                "invoice_payload": "product:1:50:extra",
            }
        }
    )
    await eventually(lambda: len(bot.texts(USER)) == 4 and len(_checkout_answers(server)) == 1)
    assert bot.texts(USER)[1:] == [text("en", Text.PRODUCT_GONE)] * 3
    assert _checkout_answers(server)[0]["ok"] is False

    # A charge Telegram reports is recorded even when its product no longer exists (deleted
    # by hand after the pre-checkout answer): the books keep it, the user is told plainly.
    server.control.push_update(
        {
            "message": {
                "message_id": _next_message_id(server),
                "date": 1_700_000_000,
                "chat": {"id": USER, "type": "private", "first_name": "Ann"},
                "from": _sender(None),
                "successful_payment": {
                    "currency": "XTR",
                    "total_amount": 50,
                    "invoice_payload": "product:12345:50",
                    "telegram_payment_charge_id": "charge-of-a-deleted-product",
                    "provider_payment_charge_id": "",
                },
            }
        }
    )
    await eventually(lambda: len(bot.texts(USER)) == 5)
    assert bot.texts(USER)[4] == "Payment received: 0 credits added. Your balance: 0."
    payment = await owner.fetchrow("SELECT * FROM payments")
    assert payment is not None
    assert (payment["product_id"], payment["amount"], payment["credits"]) == (None, 50, 0)
    assert payment["provider_payment_charge_id"] is None
    assert await count(owner, "SELECT count(*) FROM credit_changes") == 0


async def test_a_throttled_user_can_still_pay(
    start_bot: StartBot, server: TelegramServer, owner: asyncpg.Connection
) -> None:
    bot = await start_bot(throttle_burst=3, throttle_per_minute=1)
    product_id = await _product(owner, "starter", price=50, credits=100)
    invoice_id = await _invoice(bot, server, product_id)
    for n in range(2):  # the third message of the burst, then one too many
        server.control.send_text(USER, f"message {n}")
    await eventually(lambda: bot.updates("throttled") == 1)

    # Telegram's payment steps are not the user's flood: a pre-checkout query left
    # unanswered would fail the payment, a dropped successful_payment would lose a charge.
    server.control.pay_invoice(USER, invoice_id)
    await eventually(lambda: any(said.startswith("Payment received") for said in bot.texts(USER)))
    assert _checkout_answers(server)[0]["ok"] is True
    assert await count(owner, "SELECT count(*) FROM payments") == 1
    assert await _balance(owner) == 100


async def test_an_invoice_paid_while_purchases_are_paused_is_refused_as_paused(
    start_bot: StartBot, server: TelegramServer, owner: asyncpg.Connection
) -> None:
    bot = await start_bot()
    product_id = await _product(owner, "starter", price=50, credits=100)
    invoice_id = await _invoice(bot, server, product_id)  # sent before staff paused them
    await owner.execute(
        "INSERT INTO feature_flags (key, enabled, description) "
        "VALUES ('payments.enabled', false, '')"
    )

    server.control.pay_invoice(USER, invoice_id)
    await eventually(lambda: len(_checkout_answers(server)) == 1)
    answer = _checkout_answers(server)[0]
    assert answer["ok"] is False
    assert answer["error_message"] == text("en", Text.CHECKOUT_PAUSED)
    assert answer["error_message"].startswith("Purchases are paused")
    assert await count(owner, "SELECT count(*) FROM payments") == 0
    assert not any(shown.successful_payment for shown in server.control.messages(USER))
