"""Repositories: queries and writes by concern. They share the unit of work's session and
never commit; the unit of work does, once."""

from .audit import AuditRepository
from .base import Transaction
from .billing import BillingRepository
from .booking import AppointmentRepository
from .outbox import OutboxRepository
from .products import ProductRepository
from .tickets import TicketRepository
from .users import MessageRepository, UpdateRepository, UserRepository


class Repositories:
    def __init__(self, transaction: Transaction) -> None:
        self.updates = UpdateRepository(transaction)
        self.audit = AuditRepository(transaction)
        self.users = UserRepository(transaction)
        self.messages = MessageRepository(transaction)
        self.appointments = AppointmentRepository(transaction)
        self.billing = BillingRepository(transaction)
        self.outbox = OutboxRepository(transaction)
        self.products = ProductRepository(transaction)
        self.tickets = TicketRepository(transaction)


__all__ = [
    "AppointmentRepository",
    "AuditRepository",
    "BillingRepository",
    "MessageRepository",
    "OutboxRepository",
    "ProductRepository",
    "Repositories",
    "TicketRepository",
    "UpdateRepository",
    "UserRepository",
]
