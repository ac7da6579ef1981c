"""Staff blocked a user (the admin API's POST /users/{id}/block): their updates are recorded
and ignored, no reply, no booking, no ticket; a payment Telegram already charged is still
recorded and credited, since money must never be lost. And the payments flag pauses /buy."""

from __future__ import annotations

import asyncpg

from services.bot.texts import Text, text
from services.telegram_api import TelegramServer

from .conftest import StartBot, count, eventually
from .test_payments import USER, _invoice, _product

OTHER = 6262


async def test_a_blocked_users_updates_are_recorded_and_ignored_but_payments_kept(
    start_bot: StartBot, server: TelegramServer, owner: asyncpg.Connection
) -> None:
    bot = await start_bot()
    product_id = await _product(owner, "blocked-starter", price=50, credits=100)
    await _invoice(bot, server, product_id)  # the invoice came before staff blocked them
    await owner.execute("UPDATE users SET is_blocked = true WHERE telegram_id = $1", USER)
    said_before = len(bot.texts(USER))
    blocked_before = bot.updates("blocked")
    pushed = [server.control.send_text(USER, text) for text in ("/profile", "/book", "/support")]
    server.control.send_text(OTHER, "/profile")  # someone else is answered as ever
    await eventually(lambda: len(bot.texts(OTHER)) == 1)
    await eventually(lambda: bot.updates("blocked") == blocked_before + 3)
    for update in pushed:
        assert await count(
            owner, "SELECT count(*) FROM processed_updates WHERE update_id = $1", update.update_id
        )
    assert len(bot.texts(USER)) == said_before  # no reply
    assert await count(owner, "SELECT count(*) FROM tickets") == 0
    assert await count(owner, "SELECT count(*) FROM appointments") == 0
    # The charge Telegram made for the invoice sent before the block: recorded, credited,
    # with no message to the blocked user.
    server.control.push_update(
        {
            "message": {
                "message_id": 900,
                "date": 1_700_000_000,
                "chat": {"id": USER, "type": "private", "first_name": "Ann"},
                "from": {"id": USER, "is_bot": False, "first_name": "Ann"},
                "successful_payment": {
                    "currency": "XTR",
                    "total_amount": 50,
                    "invoice_payload": f"product:{product_id}:50",
                    "telegram_payment_charge_id": "charge-of-a-blocked-user",
                    "provider_payment_charge_id": "",
                },
            }
        }
    )
    await eventually(lambda: bot.updates("blocked") == blocked_before + 4)
    payment = await owner.fetchrow(
        "SELECT amount, credits FROM payments WHERE telegram_payment_charge_id = $1",
        "charge-of-a-blocked-user",
    )
    assert payment is not None and (payment["amount"], payment["credits"]) == (50, 100)
    assert await owner.fetchval("SELECT credits FROM users WHERE telegram_id = $1", USER) == 100
    assert len(bot.texts(USER)) == said_before


async def test_a_blocked_users_payment_is_refused_at_once_with_a_reason(
    start_bot: StartBot, server: TelegramServer, owner: asyncpg.Connection
) -> None:
    bot = await start_bot()
    product_id = await _product(owner, "blocked-checkout", price=50, credits=100)
    invoice_id = await _invoice(bot, server, product_id)  # the invoice came before the block
    await owner.execute("UPDATE users SET is_blocked = true WHERE telegram_id = $1", USER)
    blocked_before = bot.updates("blocked", "pre_checkout_query")

    server.control.pay_invoice(USER, invoice_id)
    await eventually(lambda: bot.updates("blocked", "pre_checkout_query") == blocked_before + 1)
    # Answered with the update, not left to Telegram's timeout.
    answers = [call.params for call in server.control.calls(USER, "answerPreCheckoutQuery")]
    refused = [(answer["ok"], answer.get("error_message")) for answer in answers]
    assert refused == [(False, text("en", Text.CHECKOUT_BLOCKED))]
    assert await count(owner, "SELECT count(*) FROM payments") == 0
    assert not any(shown.successful_payment for shown in server.control.messages(USER))


async def test_the_payments_flag_pauses_buying(
    start_bot: StartBot, server: TelegramServer, owner: asyncpg.Connection
) -> None:
    bot = await start_bot()
    await _product(owner, "flag-starter")
    await owner.execute(
        "INSERT INTO feature_flags (key, enabled, description) "
        "VALUES ('payments.enabled', false, '')"
    )
    server.control.send_text(USER, "/buy")
    await eventually(lambda: len(bot.texts(USER)) == 1)
    assert bot.texts(USER) == ["Purchases are paused right now. Please try again later."]
    await owner.execute("UPDATE feature_flags SET enabled = true")
    server.control.send_text(USER, "/buy")
    await eventually(lambda: len(bot.texts(USER)) == 2)
    assert bot.texts(USER)[1] == "Choose a package:"
