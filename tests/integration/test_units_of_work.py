"""The database layer through the real PgBouncer: concurrency, business rules enforced by the
database, bad input, and errors mapped to what services act on."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy import text

from services.core.db import Database
from services.core.errors import Conflict, DatabaseUnavailable, InvalidInput
from services.core.schema import BIGINT_MAX, Direction
from tests.conftest import database_settings
from tests.integration.conftest import bouncer_dsn


async def handle_update(db: Database, update_id: int, telegram_id: int) -> None:
    """The bot's per-update transaction."""
    async with db.unit_of_work() as uow:
        if not await uow.updates.record(update_id):
            return
        user_id = await uow.users.upsert(telegram_id, first_name=f"user {telegram_id}")
        await uow.messages.log(user_id, Direction.IN, f"update {update_id}")


async def count(owner: asyncpg.Connection, table: str) -> int:
    return int(await owner.fetchval(f"SELECT count(*) FROM {table}"))


async def test_fifty_concurrent_units_of_work_all_commit(
    database: Database, owner: asyncpg.Connection
) -> None:
    pool_capacity = database.settings.pool_size + database.settings.max_overflow
    assert pool_capacity < 50
    # Two rounds, so statements prepared in the first are reused in the second.
    for round_ in range(2):
        await asyncio.gather(
            *(handle_update(database, round_ * 100 + i, 1000 + i) for i in range(50))
        )
    assert await count(owner, "processed_updates") == 100
    assert await count(owner, "users") == 50
    assert await count(owner, "conversation_messages") == 100


async def test_duplicate_update_does_nothing(database: Database, owner: asyncpg.Connection) -> None:
    await handle_update(database, 7, 42)
    await handle_update(database, 7, 42)
    assert await count(owner, "conversation_messages") == 1


async def test_racing_bookings_for_one_slot_one_wins(
    database: Database, owner: asyncpg.Connection
) -> None:
    starts = datetime(2031, 3, 3, 10, tzinfo=UTC)
    async with database.unit_of_work() as uow:
        users = [await uow.users.upsert(500 + i) for i in range(10)]

    async def book(user_id: int) -> str:
        try:
            async with database.unit_of_work() as uow:
                await uow.appointments.book(user_id, starts, starts + timedelta(minutes=30))
        except Conflict:
            return "taken"
        return "booked"

    outcomes = await asyncio.gather(*(book(u) for u in users))
    assert sorted(outcomes) == ["booked"] + ["taken"] * 9
    assert await count(owner, "appointments") == 1
    # An overlapping (not identical) slot is refused as well; a cancelled one frees it.
    with pytest.raises(Conflict) as overlap:
        async with database.unit_of_work() as uow:
            await uow.appointments.book(
                users[0], starts + timedelta(minutes=15), starts + timedelta(hours=1)
            )
    assert overlap.value.constraint == "ex_appointments_no_overlap"
    appointment_id = await owner.fetchval("SELECT id FROM appointments")
    async with database.unit_of_work() as uow:
        await uow.appointments.cancel(appointment_id)
    async with database.unit_of_work() as uow:
        await uow.appointments.book(users[1], starts, starts + timedelta(minutes=30))


async def test_same_payment_applied_twice_adds_credits_once(
    database: Database, owner: asyncpg.Connection
) -> None:
    async with database.unit_of_work() as uow:
        user_id = await uow.users.upsert(77)

    async def pay() -> bool:
        async with database.unit_of_work() as uow:
            return await uow.billing.apply_payment(
                user_id, telegram_payment_charge_id="charge-1", amount=50, credits=100
            )

    # Once after the other, and twice at the same moment (Telegram redelivering).
    assert await pay() is True
    assert await pay() is False
    assert sorted(await asyncio.gather(pay(), pay())) == [False, False]
    assert await owner.fetchval("SELECT credits FROM users WHERE id = $1", user_id) == 100
    assert await count(owner, "payments") == 1
    assert await count(owner, "credit_changes") == 1


async def test_concurrent_first_payments_race_cleanly(
    database: Database, owner: asyncpg.Connection
) -> None:
    async with database.unit_of_work() as uow:
        user_id = await uow.users.upsert(78)

    async def pay() -> bool:
        async with database.unit_of_work() as uow:
            return await uow.billing.apply_payment(
                user_id, telegram_payment_charge_id="charge-race", amount=5, credits=10
            )

    assert sorted(await asyncio.gather(*(pay() for _ in range(5)))) == [False] * 4 + [True]
    assert await owner.fetchval("SELECT credits FROM users WHERE id = $1", user_id) == 10


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"telegram_id": BIGINT_MAX + 1}, "telegram_id"),
        ({"telegram_id": 0}, "telegram_id"),
        ({"telegram_id": 5, "username": "u" * 33}, "username"),
        ({"telegram_id": 5, "first_name": "n" * 65}, "first_name"),
    ],
)
async def test_bad_user_input_is_refused_and_writes_nothing(
    database: Database, owner: asyncpg.Connection, values: dict[str, object], field: str
) -> None:
    with pytest.raises(InvalidInput) as error:
        async with database.unit_of_work() as uow:
            await uow.updates.record(1)
            await uow.users.upsert(**values)  # type: ignore[arg-type]
    assert error.value.field == field
    assert await count(owner, "users") == 0
    assert await count(owner, "processed_updates") == 0


async def test_overlong_message_is_refused(database: Database, owner: asyncpg.Connection) -> None:
    async with database.unit_of_work() as uow:
        user_id = await uow.users.upsert(9)
    with pytest.raises(InvalidInput) as error:
        async with database.unit_of_work() as uow:
            await uow.messages.log(user_id, Direction.IN, "x" * 4097)
    assert error.value.field == "text"
    assert await count(owner, "conversation_messages") == 0


async def test_credits_never_go_negative(database: Database, owner: asyncpg.Connection) -> None:
    async with database.unit_of_work() as uow:
        user_id = await uow.users.upsert(10)
        await uow.billing.change_credits(user_id, 5, "gift")
    with pytest.raises(InvalidInput) as error:
        async with database.unit_of_work() as uow:
            await uow.billing.change_credits(user_id, -6, "spend")
    assert error.value.field == "credits"
    assert await owner.fetchval("SELECT credits FROM users WHERE id = $1", user_id) == 5
    assert await count(owner, "credit_changes") == 1


async def test_driver_level_range_error_is_invalid_input(
    database: Database, owner: asyncpg.Connection
) -> None:
    """A value the driver itself refuses (past 64 bits) never reaches PostgreSQL."""
    with pytest.raises(InvalidInput):
        async with database.unit_of_work() as uow:
            await uow.session.execute(
                text("INSERT INTO processed_updates (update_id) VALUES (:id)"),
                {"id": BIGINT_MAX + 1},
            )
    assert await count(owner, "processed_updates") == 0


async def test_statement_timeout_cancels_a_slow_query(endpoints: dict[str, str], mode: str) -> None:
    settings = database_settings(
        bouncer_dsn(endpoints, mode), prepared_statements=mode == "modern", statement_timeout=0.5
    )
    db = Database(settings, CollectorRegistry())
    try:
        with pytest.raises(DatabaseUnavailable):
            async with db.unit_of_work() as uow:
                await uow.session.execute(text("SELECT pg_sleep(3)"))
        await db.ping()  # the connection the timeout interrupted is usable again
    finally:
        await db.dispose()
