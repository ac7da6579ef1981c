"""Support tickets and their messages, shared by the bot (users and the staff group) and the
admin API."""

from .base import Repository


class TicketRepository(Repository):
    pass
