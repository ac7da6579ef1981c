"""Repositories: queries and writes by concern. They share the unit of work's session and
never commit; the unit of work does, once."""

from functools import cached_property

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
    """Each repository made at its first use: a unit of work uses one or two of them, and
    the bot opens one per update."""

    def __init__(self, transaction: Transaction) -> None:
        self._transaction = transaction

    @cached_property
    def updates(self) -> UpdateRepository:
        return UpdateRepository(self._transaction)

    @cached_property
    def audit(self) -> AuditRepository:
        return AuditRepository(self._transaction)

    @cached_property
    def users(self) -> UserRepository:
        return UserRepository(self._transaction)

    @cached_property
    def messages(self) -> MessageRepository:
        return MessageRepository(self._transaction)

    @cached_property
    def appointments(self) -> AppointmentRepository:
        return AppointmentRepository(self._transaction)

    @cached_property
    def billing(self) -> BillingRepository:
        return BillingRepository(self._transaction)

    @cached_property
    def outbox(self) -> OutboxRepository:
        return OutboxRepository(self._transaction)

    @cached_property
    def products(self) -> ProductRepository:
        return ProductRepository(self._transaction)

    @cached_property
    def tickets(self) -> TicketRepository:
        return TicketRepository(self._transaction)

    @cached_property
    def staff(self) -> StaffRepository:
        return StaffRepository(self._transaction)

    @cached_property
    def config(self) -> ConfigRepository:
        return ConfigRepository(self._transaction)

    @cached_property
    def analytics(self) -> AnalyticsRepository:
        return AnalyticsRepository(self._transaction)

    @cached_property
    def backups(self) -> BackupRunRepository:
        return BackupRunRepository(self._transaction)

    @cached_property
    def privacy(self) -> PrivacyRepository:
        return PrivacyRepository(self._transaction)


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
