"""Repositories: queries and writes by concern. They share the unit of work's session and
never commit; the unit of work does, once."""

from sqlalchemy.ext.asyncio import AsyncSession

from .billing import BillingRepository
from .booking import AppointmentRepository
from .users import MessageRepository, UpdateRepository, UserRepository


class Repositories:
    def __init__(self, session: AsyncSession) -> None:
        self.updates = UpdateRepository(session)
        self.users = UserRepository(session)
        self.messages = MessageRepository(session)
        self.appointments = AppointmentRepository(session)
        self.billing = BillingRepository(session)


__all__ = [
    "AppointmentRepository",
    "BillingRepository",
    "MessageRepository",
    "Repositories",
    "UpdateRepository",
    "UserRepository",
]
