"""What the bot says, one catalogue per language; Telegram's language_code picks it."""

# The Russian catalogue is Cyrillic on purpose; ruff takes some of its letters for Latin
# look-alikes.
# ruff: noqa: RUF001

from __future__ import annotations

from enum import StrEnum


class Text(StrEnum):
    GREETING = "greeting"
    HELP = "help"
    COMMAND_START = "command_start"
    COMMAND_PROFILE = "command_profile"
    COMMAND_HELP = "command_help"
    PROFILE = "profile"
    NO_BOOKINGS = "no_bookings"
    BOOKING = "booking"
    UNKNOWN = "unknown"
    SLOW_DOWN = "slow_down"
    # Bookings
    COMMAND_BOOK = "command_book"
    COMMAND_MY = "command_my"
    BOOK_CHOOSE = "book_choose"
    BOOK_NONE = "book_none"
    BOOK_DONE = "book_done"
    BOOK_TAKEN = "book_taken"
    BOOK_GONE = "book_gone"
    BOOK_LIMIT = "book_limit"
    MY_LIST = "my_list"
    MY_NONE = "my_none"
    CANCEL_BUTTON = "cancel_button"
    CANCELLED = "cancelled"
    CANCEL_GONE = "cancel_gone"
    REMINDER = "reminder"
    BOOKING_CANCELLED = "booking_cancelled"
    # Support (to the user)
    COMMAND_SUPPORT = "command_support"
    COMMAND_CLOSE = "command_close"
    SUPPORT_OPENED = "support_opened"
    SUPPORT_RECEIVED = "support_received"
    SUPPORT_REPLY = "support_reply"
    SUPPORT_IN_PROGRESS = "support_in_progress"
    SUPPORT_RESOLVED = "support_resolved"
    SUPPORT_CLOSED = "support_closed"
    SUPPORT_NO_TICKET = "support_no_ticket"
    # Support (in the staff group)
    STAFF_NEW_TICKET = "staff_new_ticket"
    STAFF_UNKNOWN = "staff_unknown"
    STAFF_NO_TICKET = "staff_no_ticket"
    STAFF_ASSIGNED = "staff_assigned"
    STAFF_STATUS = "staff_status"
    STAFF_NEEDS_SOLUTION = "staff_needs_solution"
    STAFF_API_REPLY = "staff_api_reply"
    # Credits and payments
    COMMAND_BUY = "command_buy"
    BUY_CHOOSE = "buy_choose"
    BUY_NONE = "buy_none"
    BUY_PAUSED = "buy_paused"
    PRODUCT_BUTTON = "product_button"
    PRODUCT_GONE = "product_gone"
    CHECKOUT_CHANGED = "checkout_changed"
    CHECKOUT_PAUSED = "checkout_paused"
    CHECKOUT_BLOCKED = "checkout_blocked"
    PAID = "paid"


ENGLISH = {
    Text.GREETING: "Hello, {name}! I am the assistant of this business. Send /help to see what "
    "I can do.",
    Text.HELP: "What I can do:\n{commands}",
    Text.COMMAND_START: "start over",
    Text.COMMAND_PROFILE: "your credits, bookings and tickets",
    Text.COMMAND_HELP: "this list",
    Text.PROFILE: "Credits: {credits}\nOpen tickets: {tickets}\nUpcoming bookings:\n{bookings}",
    Text.NO_BOOKINGS: "none",
    Text.BOOKING: "- {starts_at:%Y-%m-%d %H:%M} {zone} ({status})",
    Text.UNKNOWN: "Sorry, I did not understand that. Send /help to see what I can do.",
    Text.SLOW_DOWN: "You are sending messages too fast. Please wait a moment and try again.",
    Text.COMMAND_BOOK: "book an appointment",
    Text.COMMAND_MY: "your bookings",
    Text.BOOK_CHOOSE: "Choose a time ({zone}):",
    Text.BOOK_NONE: "There are no free times in the next {days} days. Please try again later.",
    Text.BOOK_DONE: "Booked: {starts_at:%d.%m.%Y %H:%M} ({zone}). I will remind you before it "
    "starts; /my shows your bookings.",
    Text.BOOK_TAKEN: "Sorry, that time was just taken.",
    Text.BOOK_GONE: "That time can no longer be booked. Send /book to see the free times.",
    Text.BOOK_LIMIT: "You already have {count} upcoming bookings, the most allowed. Cancel one "
    "in /my first.",
    Text.MY_LIST: "Your upcoming bookings ({zone}):\n{bookings}",
    Text.MY_NONE: "You have no upcoming bookings. Send /book to make one.",
    Text.CANCEL_BUTTON: "Cancel {starts_at:%d.%m %H:%M}",
    Text.CANCELLED: "Cancelled: {starts_at:%d.%m.%Y %H:%M} ({zone}).",
    Text.CANCEL_GONE: "This booking is not active any more.",
    Text.REMINDER: "Reminder: your appointment is at {starts_at:%d.%m.%Y %H:%M} ({zone}).",
    Text.BOOKING_CANCELLED: "Sorry, your appointment at {starts_at} ({zone}) was cancelled. Send "
    "/book to choose another time.",
    Text.COMMAND_SUPPORT: "write to support",
    Text.COMMAND_CLOSE: "close your support ticket",
    Text.SUPPORT_OPENED: "Ticket #{ticket} is open. Write your question here; our staff will "
    "answer in this chat. /close closes the ticket.",
    Text.SUPPORT_RECEIVED: "Sent to support (ticket #{ticket}).",
    Text.SUPPORT_REPLY: "Support, ticket #{ticket}:\n{text}",
    Text.SUPPORT_IN_PROGRESS: "Ticket #{ticket}: {staff} is working on it.",
    Text.SUPPORT_RESOLVED: "Ticket #{ticket} is resolved: {solution}\nWrite here if you still "
    "need help.",
    Text.SUPPORT_CLOSED: "Ticket #{ticket} is closed. {solution}",
    Text.SUPPORT_NO_TICKET: "You have no open ticket. Send /support to open one.",
    Text.STAFF_NEW_TICKET: "Ticket #{ticket} from {name} (Telegram id {telegram_id}, language "
    "{user_language}). Reply in this topic to answer; /assign, /resolve <solution>, "
    "/close <solution>.",
    Text.STAFF_UNKNOWN: "You are not registered as staff. An admin can add your Telegram id "
    "{telegram_id} with the admin API.",
    Text.STAFF_NO_TICKET: "This user has no open ticket; nothing was sent.",
    Text.STAFF_ASSIGNED: "Ticket #{ticket} is assigned to {staff}.",
    Text.STAFF_API_REPLY: "{staff} answered ticket #{ticket} in the admin API:\n{text}",
    Text.STAFF_STATUS: "Ticket #{ticket} is {status}.",
    Text.STAFF_NEEDS_SOLUTION: "Write the solution after the command, e.g. /resolve Restarted "
    "the router. The user reads it.",
    Text.COMMAND_BUY: "buy credits",
    Text.BUY_CHOOSE: "Choose a package:",
    Text.BUY_NONE: "Nothing is for sale right now.",
    Text.BUY_PAUSED: "Purchases are paused right now. Please try again later.",
    Text.PRODUCT_BUTTON: "{title}: {credits} credits for {price} ⭐",
    Text.PRODUCT_GONE: "This package is not for sale any more. Send /buy to see what is.",
    Text.CHECKOUT_CHANGED: "This package changed since the invoice was sent. Send /buy for a new "
    "one; you were not charged.",
    Text.CHECKOUT_PAUSED: "Purchases are paused right now; you were not charged. Please try "
    "again later.",
    Text.CHECKOUT_BLOCKED: "Purchases are not available for your account; you were not charged.",
    Text.PAID: "Payment received: {credits} credits added. Your balance: {balance}.",
}

RUSSIAN = {
    Text.GREETING: "Здравствуйте, {name}! Я помощник этой компании. Отправьте /help, чтобы "
    "узнать, что я умею.",
    Text.HELP: "Что я умею:\n{commands}",
    Text.COMMAND_START: "начать сначала",
    Text.COMMAND_PROFILE: "ваши кредиты, записи и обращения",
    Text.COMMAND_HELP: "этот список",
    Text.PROFILE: "Кредиты: {credits}\nОткрытые обращения: {tickets}\nБлижайшие записи:\n"
    "{bookings}",
    Text.NO_BOOKINGS: "нет",
    Text.BOOKING: "- {starts_at:%Y-%m-%d %H:%M} {zone} ({status})",
    Text.UNKNOWN: "Извините, я не понял. Отправьте /help, чтобы узнать, что я умею.",
    Text.SLOW_DOWN: "Вы отправляете сообщения слишком часто. Подождите немного и попробуйте снова.",
    Text.COMMAND_BOOK: "записаться",
    Text.COMMAND_MY: "ваши записи",
    Text.BOOK_CHOOSE: "Выберите время ({zone}):",
    Text.BOOK_NONE: "В ближайшие {days} дн. свободного времени нет. Попробуйте позже.",
    Text.BOOK_DONE: "Вы записаны: {starts_at:%d.%m.%Y %H:%M} ({zone}). Я напомню перед началом; "
    "/my покажет ваши записи.",
    Text.BOOK_TAKEN: "Извините, это время только что заняли.",
    Text.BOOK_GONE: "На это время записаться уже нельзя. Отправьте /book, чтобы увидеть "
    "свободное время.",
    Text.BOOK_LIMIT: "У вас уже {count} предстоящих записей, больше нельзя. Сначала отмените "
    "одну в /my.",
    Text.MY_LIST: "Ваши предстоящие записи ({zone}):\n{bookings}",
    Text.MY_NONE: "У вас нет предстоящих записей. Отправьте /book, чтобы записаться.",
    Text.CANCEL_BUTTON: "Отменить {starts_at:%d.%m %H:%M}",
    Text.CANCELLED: "Запись отменена: {starts_at:%d.%m.%Y %H:%M} ({zone}).",
    Text.CANCEL_GONE: "Эта запись уже не действует.",
    Text.REMINDER: "Напоминание: ваша запись {starts_at:%d.%m.%Y в %H:%M} ({zone}).",
    Text.BOOKING_CANCELLED: "Извините, ваша запись на {starts_at} ({zone}) отменена. Отправьте "
    "/book, чтобы выбрать другое время.",
    Text.COMMAND_SUPPORT: "написать в поддержку",
    Text.COMMAND_CLOSE: "закрыть обращение",
    Text.SUPPORT_OPENED: "Обращение №{ticket} открыто. Напишите свой вопрос здесь; сотрудники "
    "ответят в этом чате. /close закрывает обращение.",
    Text.SUPPORT_RECEIVED: "Отправлено в поддержку (обращение №{ticket}).",
    Text.SUPPORT_REPLY: "Поддержка, обращение №{ticket}:\n{text}",
    Text.SUPPORT_IN_PROGRESS: "Обращение №{ticket}: им занимается {staff}.",
    Text.SUPPORT_RESOLVED: "Обращение №{ticket} решено: {solution}\nНапишите сюда, если помощь "
    "всё ещё нужна.",
    Text.SUPPORT_CLOSED: "Обращение №{ticket} закрыто. {solution}",
    Text.SUPPORT_NO_TICKET: "У вас нет открытого обращения. Отправьте /support, чтобы открыть.",
    Text.STAFF_NEW_TICKET: "Обращение №{ticket} от {name} (Telegram id {telegram_id}, язык "
    "{user_language}). Ответьте в этой теме; /assign, /resolve <решение>, /close <решение>.",
    Text.STAFF_UNKNOWN: "Вы не зарегистрированы как сотрудник. Администратор может добавить ваш "
    "Telegram id {telegram_id} через admin API.",
    Text.STAFF_NO_TICKET: "У пользователя нет открытого обращения; ничего не отправлено.",
    Text.STAFF_ASSIGNED: "Обращение №{ticket} назначено: {staff}.",
    Text.STAFF_API_REPLY: "{staff} ответил(а) на обращение №{ticket} в admin API:\n{text}",
    Text.STAFF_STATUS: "Обращение №{ticket}: {status}.",
    Text.STAFF_NEEDS_SOLUTION: "Напишите решение после команды, например /resolve Перезагрузили "
    "роутер. Пользователь его прочитает.",
    Text.COMMAND_BUY: "купить кредиты",
    Text.BUY_CHOOSE: "Выберите пакет:",
    Text.BUY_NONE: "Сейчас ничего не продаётся.",
    Text.BUY_PAUSED: "Покупки сейчас приостановлены. Попробуйте позже.",
    Text.PRODUCT_BUTTON: "{title}: {credits} кредитов за {price} ⭐",
    Text.PRODUCT_GONE: "Этот пакет больше не продаётся. Отправьте /buy, чтобы увидеть, что есть.",
    Text.CHECKOUT_CHANGED: "Пакет изменился после отправки счёта. Отправьте /buy за новым; "
    "деньги не списаны.",
    Text.CHECKOUT_PAUSED: "Покупки сейчас приостановлены; деньги не списаны. Попробуйте позже.",
    Text.CHECKOUT_BLOCKED: "Покупки для вашей учётной записи недоступны; деньги не списаны.",
    Text.PAID: "Оплата получена: добавлено {credits} кредитов. Ваш баланс: {balance}.",
}

CATALOGUES = {"en": ENGLISH, "ru": RUSSIAN}
FALLBACK = "en"


def language_of(language_code: str | None) -> str:
    """The catalogue for Telegram's IETF tag ("ru", "ru-RU"); English when there is none."""
    primary = (language_code or "").split("-")[0].lower()
    return primary if primary in CATALOGUES else FALLBACK


def text(language: str, key: Text, **values: object) -> str:
    return CATALOGUES[language][key].format(**values)


def commands(language: str) -> list[tuple[str, str]]:
    """The command menu: (command, description) in the language's words."""
    return [
        ("start", text(language, Text.COMMAND_START)),
        ("book", text(language, Text.COMMAND_BOOK)),
        ("my", text(language, Text.COMMAND_MY)),
        ("buy", text(language, Text.COMMAND_BUY)),
        ("support", text(language, Text.COMMAND_SUPPORT)),
        ("close", text(language, Text.COMMAND_CLOSE)),
        ("profile", text(language, Text.COMMAND_PROFILE)),
        ("help", text(language, Text.COMMAND_HELP)),
    ]
