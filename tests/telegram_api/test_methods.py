"""Every implemented method called by real aiogram over HTTP: results aiogram parses back,
Telegram's per-chat state and errors, and the call log."""

from __future__ import annotations

import pytest
from aiogram import Bot
from aiogram.exceptions import TelegramBadRequest
from aiogram.types import (
    BotCommand,
    BotCommandScopeChat,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    LabeledPrice,
    Message,
    ReplyParameters,
)

from services.telegram_api import TelegramAPISettings, TelegramServer
from services.telegram_api.envelope import ApiError

from .conftest import TOKEN

USER = 4242
OTHER_USER = 5151
STAFF_GROUP = -1001234567890


def keyboard(*data: str) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        inline_keyboard=[[InlineKeyboardButton(text=item, callback_data=item) for item in data]]
    )


def buttons(message: Message) -> list[list[str | None]]:
    """The callback data of a message's inline keyboard, row by row."""
    markup = message.reply_markup
    rows = markup.inline_keyboard if markup else []
    return [[button.callback_data for button in row] for row in rows]


async def test_get_me_describes_the_bot_of_the_token(bot: Bot) -> None:
    me = await bot.get_me()
    assert me.id == bot.id
    assert me.is_bot
    assert me.username == "botstack_local_bot"


async def test_message_ids_are_per_chat_and_follow_the_users_messages(
    bot: Bot, server: TelegramServer
) -> None:
    server.control.send_text(USER, "/start")
    first = await bot.send_message(USER, "hello", reply_markup=keyboard("a", "b"))
    second = await bot.send_message(USER, "again")
    elsewhere = await bot.send_message(OTHER_USER, "hi")

    assert (first.message_id, second.message_id, elsewhere.message_id) == (2, 3, 1)
    assert first.chat.id == USER and first.from_user is not None
    assert first.from_user.id == bot.id
    assert buttons(first) == [["a", "b"]]
    calls = server.control.calls(chat_id=USER)
    assert [call.method for call in calls] == ["sendMessage", "sendMessage"]
    assert calls[0].params == {
        "chat_id": USER,
        "text": "hello",
        "reply_markup": {
            "inline_keyboard": [
                [{"text": "a", "callback_data": "a"}, {"text": "b", "callback_data": "b"}]
            ]
        },
    }


async def test_send_message_rejects_what_telegram_rejects(bot: Bot) -> None:
    with pytest.raises(TelegramBadRequest, match="message is too long"):
        await bot.send_message(USER, "x" * 4097)
    with pytest.raises(TelegramBadRequest, match="BUTTON_DATA_INVALID"):
        await bot.send_message(USER, "hi", reply_markup=keyboard("d" * 65))
    with pytest.raises(TelegramBadRequest, match="message to be replied not found"):
        await bot.send_message(USER, "hi", reply_parameters=ReplyParameters(message_id=99))


async def test_reply_to_a_users_message(bot: Bot, server: TelegramServer) -> None:
    question = server.control.send_text(USER, "question?")
    assert question.message is not None
    answer = await bot.send_message(
        USER, "answer", reply_parameters=ReplyParameters(message_id=question.message.message_id)
    )
    assert answer.reply_to_message is not None
    assert answer.reply_to_message.text == "question?"


async def test_edit_text_and_markup(bot: Bot, server: TelegramServer) -> None:
    sent = await bot.send_message(USER, "pick one", reply_markup=keyboard("a"))

    edited = await bot.edit_message_text(
        "picked", chat_id=USER, message_id=sent.message_id, reply_markup=keyboard("undo")
    )
    assert isinstance(edited, Message)
    assert edited.text == "picked" and edited.edit_date is not None
    assert buttons(edited) == [["undo"]]

    cleared = await bot.edit_message_reply_markup(chat_id=USER, message_id=sent.message_id)
    assert isinstance(cleared, Message)
    assert cleared.text == "picked" and buttons(cleared) == []

    with pytest.raises(TelegramBadRequest, match="message is not modified"):
        await bot.edit_message_text("picked", chat_id=USER, message_id=sent.message_id)
    with pytest.raises(TelegramBadRequest, match="message to edit not found"):
        await bot.edit_message_text("x", chat_id=USER, message_id=999)
    users = server.control.send_text(USER, "mine")
    assert users.message is not None
    with pytest.raises(TelegramBadRequest, match="message can't be edited"):
        await bot.edit_message_text("x", chat_id=USER, message_id=users.message.message_id)


async def test_delete_message_once(bot: Bot) -> None:
    sent = await bot.send_message(USER, "temporary")
    assert await bot.delete_message(USER, sent.message_id) is True
    with pytest.raises(TelegramBadRequest, match="message to delete not found"):
        await bot.delete_message(USER, sent.message_id)


async def test_send_chat_action(bot: Bot, server: TelegramServer) -> None:
    assert await bot.send_chat_action(USER, "typing") is True
    with pytest.raises(TelegramBadRequest, match="wrong parameter action"):
        await bot.send_chat_action(USER, "dancing")
    assert [call.params["action"] for call in server.control.calls(USER)] == [
        "typing",
        "dancing",
    ]


async def test_answer_callback_query_of_a_pressed_button(bot: Bot, server: TelegramServer) -> None:
    sent = await bot.send_message(USER, "menu", reply_markup=keyboard("open"))
    pressed = server.control.press_button(USER, sent.message_id, "open")
    assert pressed.callback_query is not None
    query_id = pressed.callback_query.id

    assert await bot.answer_callback_query(query_id, text="opened") is True
    with pytest.raises(TelegramBadRequest, match="query is too old"):
        await bot.answer_callback_query(query_id)
    # The answer belongs to the chat the button was pressed in.
    assert [call.method for call in server.control.calls(USER)][-2:] == [
        "answerCallbackQuery",
        "answerCallbackQuery",
    ]


async def test_invoice_paid_by_the_user(bot: Bot, server: TelegramServer) -> None:
    invoice = await bot.send_invoice(
        USER,
        title="10 credits",
        description="Ten message credits",
        payload="credits:10",
        currency="XTR",
        prices=[LabeledPrice(label="10 credits", amount=50)],
    )
    assert invoice.invoice is not None
    assert (invoice.invoice.currency, invoice.invoice.total_amount) == ("XTR", 50)

    checkout = server.control.pay_invoice(USER, invoice.message_id)
    assert checkout.pre_checkout_query is not None
    assert checkout.pre_checkout_query.invoice_payload == "credits:10"
    assert await bot.answer_pre_checkout_query(checkout.pre_checkout_query.id, ok=True)

    updates = await bot.get_updates(offset=checkout.update_id + 1)
    assert len(updates) == 1 and updates[0].message is not None
    payment = updates[0].message.successful_payment
    assert payment is not None
    assert (payment.invoice_payload, payment.total_amount) == ("credits:10", 50)
    assert updates[0].message.message_id == invoice.message_id + 1


async def test_declined_pre_checkout_sends_no_payment(bot: Bot, server: TelegramServer) -> None:
    invoice = await bot.send_invoice(
        USER, "Slot", "One slot", "slot:1", "XTR", [LabeledPrice(label="slot", amount=1)]
    )
    checkout = server.control.pay_invoice(USER, invoice.message_id)
    assert checkout.pre_checkout_query is not None
    assert await bot.answer_pre_checkout_query(
        checkout.pre_checkout_query.id, ok=False, error_message="Sold out"
    )
    assert await bot.get_updates(offset=checkout.update_id + 1) == []


async def test_forum_topic_and_messages_in_it(bot: Bot) -> None:
    topic = await bot.create_forum_topic(STAFF_GROUP, "Ticket #1 - Alice")
    assert topic.name == "Ticket #1 - Alice"
    in_topic = await bot.send_message(
        STAFF_GROUP, "new ticket", message_thread_id=topic.message_thread_id
    )
    assert in_topic.message_thread_id == topic.message_thread_id
    assert in_topic.is_topic_message
    with pytest.raises(TelegramBadRequest, match="message thread not found"):
        await bot.send_message(STAFF_GROUP, "lost", message_thread_id=topic.message_thread_id + 50)
    with pytest.raises(TelegramBadRequest, match="the chat is not a forum"):
        await bot.create_forum_topic(USER, "private chats have no topics")


async def test_copy_and_forward_a_users_message(bot: Bot, server: TelegramServer) -> None:
    question = server.control.send_text(USER, "my order is late")
    assert question.message is not None
    topic = await bot.create_forum_topic(STAFF_GROUP, "Ticket #2")

    copied = await bot.copy_message(
        STAFF_GROUP, USER, question.message.message_id, message_thread_id=topic.message_thread_id
    )
    forwarded = await bot.forward_message(STAFF_GROUP, USER, question.message.message_id)

    assert forwarded.text == "my order is late"
    assert forwarded.forward_origin is not None
    assert forwarded.message_id == copied.message_id + 1
    copy_call = server.control.calls(STAFF_GROUP, method="copyMessage")[0]
    assert copy_call.result == {"message_id": copied.message_id}
    with pytest.raises(TelegramBadRequest, match="message to copy not found"):
        await bot.copy_message(STAFF_GROUP, USER, 999)


async def test_command_menu_per_scope(bot: Bot) -> None:
    menu = [
        BotCommand(command="start", description="Start"),
        BotCommand(command="help", description="Help"),
    ]
    assert await bot.set_my_commands(menu)
    assert await bot.set_my_commands(
        [BotCommand(command="tickets", description="Open tickets")],
        scope=BotCommandScopeChat(chat_id=STAFF_GROUP),
    )
    assert [c.command for c in await bot.get_my_commands()] == ["start", "help"]
    staff = await bot.get_my_commands(scope=BotCommandScopeChat(chat_id=STAFF_GROUP))
    assert [c.command for c in staff] == ["tickets"]
    with pytest.raises(TelegramBadRequest, match="BOT_COMMAND_INVALID"):
        await bot.set_my_commands([BotCommand(command="Bad Command", description="x")])
    assert await bot.delete_my_commands()
    assert await bot.get_my_commands() == []


async def test_html_parse_mode_becomes_entities(bot: Bot) -> None:
    sent = await bot.send_message(
        USER,
        '<b>Order</b> #7 &lt;ready&gt; 😀 <a href="https://example.com">track</a>',
        parse_mode="HTML",
    )
    assert sent.text == "Order #7 <ready> 😀 track"
    assert [(e.type, e.offset, e.length, e.url) for e in sent.entities or []] == [
        ("bold", 0, 5, None),
        ("text_link", 20, 5, "https://example.com"),  # offsets count UTF-16 units: 😀 is 2
    ]
    plain = await bot.send_message(USER, "<b>not parsed</b>")
    assert plain.text == "<b>not parsed</b>" and plain.entities is None


@pytest.mark.parametrize(
    ("html", "error"),
    [
        ("price < 5", 'Unsupported start tag "" at byte offset 6'),
        ("<b>bold", 'Can\'t find end tag corresponding to start tag "b"'),
        ("<b>x</i>", 'Unmatched end tag at byte offset 4, expected "</b>", found "</i>"'),
        ("<blink>x</blink>", 'Unsupported start tag "blink" at byte offset 0'),
    ],
)
async def test_bad_html_is_refused_like_telegram(bot: Bot, html: str, error: str) -> None:
    with pytest.raises(TelegramBadRequest, match="can't parse entities") as caught:
        await bot.send_message(USER, html, parse_mode="HTML")
    assert error in caught.value.message


async def test_get_file_and_download_what_a_user_sent(bot: Bot, server: TelegramServer) -> None:
    stored = server.control.add_file(b"\x89PNG receipt", "receipt.png")
    server.control.push_update(
        {
            "message": {
                "message_id": 1,
                "date": 1_700_000_000,
                "chat": {"id": USER, "type": "private", "first_name": "Ann"},
                "from": {"id": USER, "is_bot": False, "first_name": "Ann"},
                "document": {"file_id": stored.file_id, "file_unique_id": stored.file_unique_id},
            }
        }
    )
    (update,) = await bot.get_updates()
    assert update.message is not None and update.message.document is not None

    found = await bot.get_file(update.message.document.file_id)
    assert found.file_size == len(b"\x89PNG receipt") and found.file_path
    downloaded = await bot.download_file(found.file_path)
    assert downloaded is not None and downloaded.read() == b"\x89PNG receipt"
    with pytest.raises(TelegramBadRequest, match="invalid file_id"):
        await bot.get_file("no-such-file")


async def test_memory_is_bounded_for_long_runs() -> None:
    settings = TelegramAPISettings(port=0, tokens=(TOKEN,), call_log_size=3, chat_history_size=2)
    telegram = TelegramServer(settings)
    bot = telegram.control.bot()
    for n in range(5):
        await bot.call("sendMessage", {"chat_id": USER, "text": f"message {n}"})
    assert [call.params["text"] for call in telegram.control.calls()] == [
        "message 2",
        "message 3",
        "message 4",
    ]
    assert [m.text for m in telegram.control.messages(USER)] == ["message 3", "message 4"]
    with pytest.raises(ApiError, match="message to edit not found"):
        await bot.call("editMessageText", {"chat_id": USER, "message_id": 1, "text": "x"})
