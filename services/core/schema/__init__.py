"""The one schema every service and Alembic share. Importing this package registers every
table on SQLModel.metadata."""

from sqlmodel import SQLModel

from .base import BIGINT_MAX, MESSAGE_TEXT_MAX, db_now
from .billing import CreditChange, Payment, Product
from .booking import Appointment, AppointmentStatus
from .ops import (
    BackupKind,
    BackupRun,
    BackupStatus,
    FeatureFlag,
    OutboxMessage,
    OutboxStatus,
    RuntimeSetting,
)
from .staff import ApiKey, AuditEntry, Role, Staff
from .support import ForumTopic, Ticket, TicketAuthor, TicketMessage, TicketStatus
from .users import ConversationMessage, Direction, ProcessedUpdate, User

metadata = SQLModel.metadata

__all__ = [
    "BIGINT_MAX",
    "MESSAGE_TEXT_MAX",
    "ApiKey",
    "Appointment",
    "AppointmentStatus",
    "AuditEntry",
    "BackupKind",
    "BackupRun",
    "BackupStatus",
    "ConversationMessage",
    "CreditChange",
    "Direction",
    "FeatureFlag",
    "ForumTopic",
    "OutboxMessage",
    "OutboxStatus",
    "Payment",
    "ProcessedUpdate",
    "Product",
    "Role",
    "RuntimeSetting",
    "Staff",
    "Ticket",
    "TicketAuthor",
    "TicketMessage",
    "TicketStatus",
    "User",
    "db_now",
    "metadata",
]
