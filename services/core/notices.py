"""Notices: messages to a user that a service queues by meaning and the bot words in the
user's language when it sends them (the words are the bot's catalogue, services/bot/texts.py,
under the same keys). The admin API says what happened; only the bot speaks to users."""

from enum import StrEnum


class Notice(StrEnum):
    """What happened, and the values its text needs."""

    TICKET_REPLY = "support_reply"  # ticket, text: a staff member's answer
    TICKET_IN_PROGRESS = "support_in_progress"  # ticket, staff: someone took the ticket
    TICKET_RESOLVED = "support_resolved"  # ticket, solution
    TICKET_CLOSED = "support_closed"  # ticket, solution
    BOOKING_CANCELLED = "booking_cancelled"  # starts_at, zone (formatted): staff cancelled it
