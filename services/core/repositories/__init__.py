"""Repositories: queries and writes by concern. They share the unit of work's session and
never commit; the unit of work does, once."""

from .analytics import AnalyticsRepository
from .audit import AuditRepository
from .backups import BackupRunRepository
from .base import Transaction
from .billing import BillingRepository
from .booking import AppointmentRepository
from .config import ConfigRepository
from .outbox import OutboxRepository
from .privacy import PrivacyRepository
from .products import ProductRepository
from .staff import StaffRepository
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
        self.staff = StaffRepository(transaction)
        self.config = ConfigRepository(transaction)
        self.analytics = AnalyticsRepository(transaction)
        self.backups = BackupRunRepository(transaction)
        self.privacy = PrivacyRepository(transaction)


__all__ = [
    "AnalyticsRepository",
    "AppointmentRepository",
    "AuditRepository",
    "BackupRunRepository",
    "BillingRepository",
    "ConfigRepository",
    "MessageRepository",
    "OutboxRepository",
    "PrivacyRepository",
    "ProductRepository",
    "Repositories",
    "StaffRepository",
    "TicketRepository",
    "UpdateRepository",
    "UserRepository",
]
