"""Notices: messages that a service queues by meaning and the bot words when it sends them
(the words are the bot's catalogue, services/bot/texts.py, under the same keys): to a user in
their language, or in a user's support topic in the staff group. The admin API says what
happened; only the bot speaks in Telegram."""

from enum import StrEnum


class Notice(StrEnum):
    """What happened, and the values its text needs."""

    TICKET_REPLY = "support_reply"  # ticket, text: a staff member's answer
    TICKET_IN_PROGRESS = "support_in_progress"  # ticket, staff: someone took the ticket
    TICKET_RESOLVED = "support_resolved"  # ticket, solution
    TICKET_CLOSED = "support_closed"  # ticket, solution
    BOOKING_CANCELLED = "booking_cancelled"  # starts_at, zone (formatted): staff cancelled it
    # In the user's topic, for staff working in Telegram:
    STAFF_API_REPLY = "staff_api_reply"  # ticket, staff, text: answered in the admin API
    STAFF_ASSIGNED = "staff_assigned"  # ticket, staff
    STAFF_STATUS = "staff_status"  # ticket, status
