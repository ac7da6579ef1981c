"""Products sold for Telegram Stars, payments, and the ledger of credit changes."""

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from .base import fk_field, id_field, now_field, updated_field


class Product(SQLModel, table=True):
    __tablename__ = "products"
    __table_args__ = (
        sa.CheckConstraint("price_stars > 0", name="price_positive"),
        sa.CheckConstraint("credits > 0", name="credits_positive"),
    )

    id: int | None = id_field()
    code: str = Field(max_length=64, unique=True)
    title: str = Field(max_length=128)
    description: str = Field(default="", max_length=1024)
    price_stars: int = Field(gt=0, le=2**31 - 1)
    credits: int = Field(gt=0, le=2**31 - 1)
    is_active: bool = Field(default=True, sa_column_kwargs={"server_default": sa.true()})
    created_at: datetime | None = now_field()
    updated_at: datetime | None = updated_field()


class Payment(SQLModel, table=True):
    """A successful Telegram Stars payment. The unique charge id makes a redelivered
    successful_payment impossible to record twice; users and products are RESTRICTed so the
    books never lose a payment."""

    __tablename__ = "payments"
    __table_args__ = (
        sa.CheckConstraint("amount > 0", name="amount_positive"),
        sa.CheckConstraint("credits >= 0", name="credits_nonnegative"),
        sa.Index("ix_payments_created_at", "created_at"),
        sa.Index("ix_payments_user_created", "user_id", "created_at"),
    )

    id: int | None = id_field()
    user_id: int = fk_field("users.id", "RESTRICT")
    product_id: int | None = fk_field("products.id", "RESTRICT", nullable=True)
    telegram_payment_charge_id: str = Field(min_length=1, max_length=256, unique=True)
    provider_payment_charge_id: str | None = Field(default=None, max_length=256)
    currency: str = Field(
        default="XTR", min_length=3, max_length=3, sa_column_kwargs={"server_default": "XTR"}
    )
    amount: int = Field(gt=0, le=2**31 - 1)
    credits: int = Field(ge=0, le=2**31 - 1)
    created_at: datetime | None = now_field()


class CreditChange(SQLModel, table=True):
    """One change of a user's credits. A payment can be the cause of at most one change, so
    its credits are added exactly once."""

    __tablename__ = "credit_changes"
    __table_args__ = (
        sa.CheckConstraint("delta <> 0", name="delta_nonzero"),
        sa.CheckConstraint("balance_after >= 0", name="balance_after_nonnegative"),
        sa.Index("ix_credit_changes_user_created", "user_id", "created_at"),
    )

    id: int | None = id_field()
    user_id: int = fk_field("users.id", "RESTRICT")
    delta: int = Field(ge=-(2**31) + 1, le=2**31 - 1)
    balance_after: int = Field(ge=0)
    reason: str = Field(max_length=256)
    payment_id: int | None = Field(
        default=None,
        sa_type=sa.BigInteger,
        foreign_key="payments.id",
        ondelete="RESTRICT",
        unique=True,
        nullable=True,
    )
    staff_id: int | None = fk_field("staff.id", "SET NULL", nullable=True)
    created_at: datetime | None = now_field()
