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


ENGLISH = {
    Text.GREETING: "Hello, {name}! I am the assistant of this business. Send /help to see what "
    "I can do.",
    Text.HELP: "What I can do:\n{commands}",
    Text.COMMAND_START: "start over",
    Text.COMMAND_PROFILE: "your credits, bookings and tickets",
    Text.COMMAND_HELP: "this list",
    Text.PROFILE: "Credits: {credits}\nOpen tickets: {tickets}\nUpcoming bookings:\n{bookings}",
    Text.NO_BOOKINGS: "none",
    Text.BOOKING: "- {starts_at:%Y-%m-%d %H:%M} UTC ({status})",
    Text.UNKNOWN: "Sorry, I did not understand that. Send /help to see what I can do.",
    Text.SLOW_DOWN: "You are sending messages too fast. Please wait a moment and try again.",
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
    Text.BOOKING: "- {starts_at:%Y-%m-%d %H:%M} UTC ({status})",
    Text.UNKNOWN: "Извините, я не понял. Отправьте /help, чтобы узнать, что я умею.",
    Text.SLOW_DOWN: "Вы отправляете сообщения слишком часто. Подождите немного и попробуйте снова.",
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
        ("profile", text(language, Text.COMMAND_PROFILE)),
        ("help", text(language, Text.COMMAND_HELP)),
    ]
