"""The feature flags the services read: the one list the admin API accepts names from (any
other name is refused), with what each changes and its default when no row exists."""

from __future__ import annotations

from dataclasses import dataclass

from services.core.db import UnitOfWork
from services.core.schema import FeatureFlag


@dataclass(frozen=True)
class Flag:
    key: str
    default: bool
    description: str


PAYMENTS = Flag(
    "payments.enabled",
    True,
    "the bot sells credits: /buy offers products and invoices may be paid; off, /buy says "
    "purchases are paused and pre-checkout queries are refused (payments Telegram already "
    "charged are always recorded)",
)
KNOWN_FLAGS = {flag.key: flag for flag in (PAYMENTS,)}


async def enabled(uow: UnitOfWork, flag: Flag) -> bool:
    row = await uow.session.get(FeatureFlag, flag.key)
    return flag.default if row is None else row.enabled
