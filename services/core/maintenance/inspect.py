"""`botstack inspect`: the newest rows of an entity, never a secret (API key hashes, payment
charge ids are not selectable at all), and personal data (names, message text, payloads) only
when asked for, that use written to the audit log in the same transaction."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg


@dataclass(frozen=True)
class Entity:
    table: str
    columns: tuple[str, ...]  # always shown
    personal: tuple[str, ...]  # shown only with --show-personal-data
    time_column: str = "created_at"
    user_column: str | None = "user_id"


ENTITIES: dict[str, Entity] = {
    "users": Entity(
        "users",
        ("id", "is_active", "is_blocked", "credits", "created_at", "deleted_at"),
        ("telegram_id", "username", "first_name", "last_name", "language_code"),
        user_column="id",
    ),
    "updates": Entity("processed_updates", ("update_id", "processed_at"), (), "processed_at", None),
    "messages": Entity(
        "conversation_messages",
        ("id", "user_id", "direction", "created_at"),
        ("text", "telegram_message_id", "context"),
    ),
    "tickets": Entity(
        "tickets",
        ("id", "user_id", "assigned_staff_id", "status", "created_at", "closed_at"),
        ("subject", "solution"),
    ),
    "appointments": Entity(
        "appointments", ("id", "user_id", "resource", "starts_at", "status", "created_at"), ()
    ),
    "payments": Entity(
        "payments",
        ("id", "user_id", "product_id", "currency", "amount", "credits", "created_at"),
        (),
    ),
    "outbox": Entity(
        "outbox",
        ("id", "user_id", "method", "status", "attempts", "available_at", "sent_at", "created_at"),
        ("chat_id", "payload", "last_error"),
    ),
    "audit": Entity(
        "audit_log",
        ("id", "actor", "action", "entity", "entity_id", "created_at"),
        ("summary",),
        user_column=None,
    ),
    "backups": Entity(
        "backup_runs",
        ("id", "kind", "status", "label", "started_at", "finished_at", "size_bytes", "error"),
        (),
        "started_at",
        None,
    ),
}

# The actor recorded for a use of --show-personal-data.
ACTION = "cli.inspect.personal_data"


async def recent(
    connection: asyncpg.Connection,
    name: str,
    *,
    limit: int,
    since: datetime | None = None,
    user_id: int | None = None,
    show_personal_data: bool = False,
    actor: str = "operator",
) -> list[dict[str, Any]]:
    entity = ENTITIES[name]
    columns = entity.columns + (entity.personal if show_personal_data else ())
    where: list[str] = []
    args: list[Any] = []
    if since is not None:
        args.append(since)
        where.append(f"{entity.time_column} >= ${len(args)}")
    if user_id is not None:
        if entity.user_column is None:
            raise ValueError(f"{name} has no user to filter by")
        args.append(user_id)
        where.append(f"{entity.user_column} = ${len(args)}")
    args.append(limit)
    query = (
        f"SELECT {', '.join(columns)} FROM {entity.table}"
        + (f" WHERE {' AND '.join(where)}" if where else "")
        + f" ORDER BY {entity.time_column} DESC LIMIT ${len(args)}"
    )
    async with connection.transaction():
        rows = [dict(row) for row in await connection.fetch(query, *args)]
        if show_personal_data:
            summary = json.dumps({"entity": name, "rows": len(rows), "user_id": user_id})
            await connection.execute(
                "INSERT INTO audit_log (actor, action, entity, entity_id, summary)"
                " VALUES ($1, $2, $3, NULL, $4::jsonb)",
                actor[:64],
                ACTION,
                name,
                summary,
            )
    return rows
