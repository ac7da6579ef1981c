"""After a load run: every update Locust delivered and the webhook acknowledged, checked
against the database (its effect present, exactly once), and every text the stand-in
delivered checked against what the bot logged as said (more delivered than said is a reply
sent twice, fewer a reply lost)."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import asyncpg

# Updates that are messages: each leaves exactly one inbound row in conversation_messages.
MESSAGE_KINDS = frozenset(
    {"start", "text", "command", "book", "buy", "support", "close", "payment"}
)


@dataclass
class Accounting:
    updates_sent: int = 0  # distinct updates delivered at least once
    updates_acknowledged: int = 0
    deliveries: int = 0  # POSTs, redeliveries included
    redeliveries_exact: int = 0  # acknowledged updates sent again on purpose
    updates_unacknowledged: int = 0  # still refused when the run ended (Telegram would retry)
    updates_lost: int = 0
    updates_applied_twice: int = 0
    payments_acknowledged: int = 0
    payments_credited_twice: int = 0
    credit_balance_mismatches: int = 0
    bookings_twice: int = 0
    replies_delivered: int = 0
    replies_logged: int = 0
    replies_sent_twice: int = 0
    # Logged as said but never delivered: the known window between the commit and the send
    # (a process killed between them), counted rather than hidden.
    replies_lost: int = 0
    lost_examples: list[str] = field(default_factory=list)
    twice_examples: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def read_ledger(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line]


async def account(
    ledger: list[dict[str, Any]], postgres_dsn: str, texts_delivered: dict[str, int]
) -> Accounting:
    result = Accounting(deliveries=sum(len(e["attempts"]) for e in ledger))
    first = [e for e in ledger if not e["redelivery"]]
    acked = {e["update_id"]: e for e in first if e["acked"]}
    result.updates_sent = len({e["update_id"] for e in first})
    result.updates_acknowledged = len(acked)
    result.updates_unacknowledged = result.updates_sent - len(acked)
    result.redeliveries_exact = sum(1 for e in ledger if e["redelivery"])
    chats = sorted({e["chat_id"] for e in first})
    ids = sorted(acked)
    connection = await asyncpg.connect(postgres_dsn)
    try:
        processed = {
            row[0]
            for row in await connection.fetch(
                "SELECT update_id FROM processed_updates WHERE update_id = ANY($1::bigint[])", ids
            )
        }
        inbound = Counter(
            {
                row[0]: row[1]
                for row in await connection.fetch(
                    "SELECT (context->>'update_id')::bigint, count(*) FROM conversation_messages "
                    "WHERE direction = 'in' AND (context->>'update_id')::bigint = "
                    "ANY($1::bigint[]) "
                    "GROUP BY 1",
                    ids,
                )
            }
        )
        users = {
            row[0]
            for row in await connection.fetch(
                "SELECT telegram_id FROM users WHERE telegram_id = ANY($1::bigint[])", chats
            )
        }
        for update_id, entry in acked.items():
            missing = update_id not in processed or (
                entry["kind"] in MESSAGE_KINDS and inbound[update_id] == 0
            )
            if missing or entry["chat_id"] not in users:
                result.updates_lost += 1
                _example(result.lost_examples, f"{entry['kind']} update {update_id}")
            if inbound[update_id] > 1:
                result.updates_applied_twice += 1
                _example(result.twice_examples, f"{entry['kind']} update {update_id}")
        await _payments(connection, acked, result)
        result.bookings_twice = await connection.fetchval(
            "SELECT count(*) FROM (SELECT 1 FROM appointments a JOIN users u ON u.id = a.user_id "
            "WHERE u.telegram_id = ANY($1::bigint[]) AND a.status IN ('booked', 'confirmed') "
            "GROUP BY a.user_id, a.starts_at HAVING count(*) > 1) AS twice",
            chats,
        )
        logged = {
            row[0]: row[1]
            for row in await connection.fetch(
                "SELECT u.telegram_id, count(*) FROM conversation_messages m "
                "JOIN users u ON u.id = m.user_id WHERE m.direction = 'out' "
                "AND u.telegram_id = ANY($1::bigint[]) GROUP BY 1",
                chats,
            )
        }
    finally:
        await connection.close()
    for chat in chats:
        delivered = texts_delivered.get(str(chat), 0)
        said = logged.get(chat, 0)
        result.replies_delivered += delivered
        result.replies_logged += said
        if delivered > said:
            result.replies_sent_twice += delivered - said
            _example(result.twice_examples, f"chat {chat}: {delivered} texts, {said} logged")
        elif said > delivered:
            result.replies_lost += said - delivered
    return result


async def _payments(
    connection: asyncpg.Connection, acked: dict[int, dict[str, Any]], result: Accounting
) -> None:
    charges = [e["charge_id"] for e in acked.values() if e.get("charge_id")]
    result.payments_acknowledged = len(charges)
    credited = {
        row[0]: row[1]
        for row in await connection.fetch(
            "SELECT p.telegram_payment_charge_id, count(c.id) FROM payments p "
            "LEFT JOIN credit_changes c ON c.payment_id = p.id "
            "WHERE p.telegram_payment_charge_id = ANY($1::text[]) GROUP BY 1",
            charges,
        )
    }
    for charge in charges:
        times = credited.get(charge, 0)
        if times == 0:
            result.updates_lost += 1
            _example(result.lost_examples, f"payment {charge} not credited")
        elif times > 1:
            result.payments_credited_twice += 1
            _example(result.twice_examples, f"payment {charge} credited {times} times")
    chats = sorted({e["chat_id"] for e in acked.values() if e.get("charge_id")})
    result.credit_balance_mismatches = await connection.fetchval(
        "SELECT count(*) FROM users u WHERE u.telegram_id = ANY($1::bigint[]) AND u.credits <> "
        "(SELECT coalesce(sum(delta), 0) FROM credit_changes c WHERE c.user_id = u.id)",
        chats,
    )


def _example(examples: list[str], text: str) -> None:
    if len(examples) < 10:
        examples.append(text)
