"""Payments and credits: each payment's credits are added exactly once."""

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlmodel import col

from ..errors import InvalidInput, NotFound
from ..schema import CreditChange, Payment, User
from .base import Repository, checked
from .pages import Key, Slice, page


class BillingRepository(Repository):
    async def change_credits(
        self,
        user_id: int,
        delta: int,
        reason: str,
        *,
        payment_id: int | None = None,
        staff_id: int | None = None,
    ) -> int:
        """Adds delta (negative to spend) and records the change; returns the new balance.
        A balance that would go below zero is refused by the database (InvalidInput, field
        'credits')."""
        change = checked(
            CreditChange,
            user_id=user_id,
            delta=delta,
            balance_after=0,  # the real balance comes from the update below
            reason=reason,
            payment_id=payment_id,
            staff_id=staff_id,
        )
        if change.delta == 0:
            raise InvalidInput("must not be zero", "delta")
        balance = (
            await self.session.execute(
                sa.update(User)
                .where(col(User.id) == user_id)
                .values(credits=col(User.credits) + change.delta)
                .returning(col(User.credits))
            )
        ).scalar_one_or_none()
        if balance is None:
            raise NotFound("user", user_id)
        self.session.add(
            CreditChange(**change.model_dump(exclude_unset=True) | {"balance_after": balance})
        )
        await self.session.flush()
        return int(balance)

    async def apply_payment(
        self,
        user_id: int,
        *,
        telegram_payment_charge_id: str,
        amount: int,
        credits: int,
        product_id: int | None = None,
        provider_payment_charge_id: str | None = None,
        currency: str = "XTR",
    ) -> bool:
        """Records a successful payment and adds its credits, once: a second delivery of the
        same charge id changes nothing and returns False."""
        payment = checked(
            Payment,
            user_id=user_id,
            product_id=product_id,
            telegram_payment_charge_id=telegram_payment_charge_id,
            provider_payment_charge_id=provider_payment_charge_id,
            currency=currency,
            amount=amount,
            credits=credits,
        )
        payment_id = (
            await self.session.execute(
                insert(Payment)
                .values(payment.model_dump(exclude={"id", "created_at"}))
                .on_conflict_do_nothing(index_elements=[col(Payment.telegram_payment_charge_id)])
                .returning(col(Payment.id))
            )
        ).scalar_one_or_none()
        if payment_id is None:
            return False
        if payment.credits:
            await self.change_credits(user_id, payment.credits, "payment", payment_id=payment_id)
        return True

    async def payments(
        self,
        *,
        user_id: int | None = None,
        product_id: int | None = None,
        created_from: datetime | None = None,
        created_to: datetime | None = None,
        after: Key | None,
        limit: int,
    ) -> Slice[Payment]:
        """A page of payments newest first; each filter given narrows it."""
        query = sa.select(Payment)
        if user_id is not None:
            query = query.where(col(Payment.user_id) == user_id)
        if product_id is not None:
            query = query.where(col(Payment.product_id) == product_id)
        if created_from is not None:
            query = query.where(col(Payment.created_at) >= created_from)
        if created_to is not None:
            query = query.where(col(Payment.created_at) < created_to)
        return await page(self.session, query, Payment, after, limit)
