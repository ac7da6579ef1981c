"""An update's own writes (its id, the sender's upsert, the inbound and outbound log) in as
few round trips as they can take without losing their guarantees.

`look` reads, outside any transaction, whether the update was applied and who sent it (their
row id, or one drawn from the sequence for a new user, whether staff blocked them and whether
they have an active support ticket, which their plain texts go to). The
writes are deferred to the unit of work (db/unit_of_work.py): when the handlers answer from
memory (/start, a plain text), all of them go out at the end as ONE statement of
data-modifying CTEs, atomic on its own, so the update costs two round trips and no
BEGIN/COMMIT. The statement records the update id first and writes the rest only if that
insert did: a redelivery that raced this one changes nothing and is reported as applied.
When a handler reads or writes, the id, the upsert and the inbound message go out right
after BEGIN, before its first statement, and the outbound log before COMMIT: everything
still commits together or not at all.

A block staff commit while an update is in flight takes effect from the next update, as if
it had committed just after this one; so does a ticket the user opens meanwhile (a /support
delivered at the same time).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import NamedTuple

from ..db.driver import Sql
from ..schema import ConversationMessage, Direction, ProcessedUpdate, User
from .base import checked
from .tickets import ACTIVE

LOOK = (
    "SELECT EXISTS (SELECT 1 FROM processed_updates WHERE update_id = $1) AS applied, "
    "COALESCE(users.id, CASE WHEN $2::bigint IS NOT NULL "
    "THEN nextval(pg_get_serial_sequence('users', 'id')) END) AS id, "
    "COALESCE(users.is_blocked, false) AS is_blocked, "
    "EXISTS (SELECT 1 FROM tickets WHERE tickets.user_id = users.id AND tickets.status IN ("
    + ", ".join(f"'{status.value}'" for status in ACTIVE)
    + ")) AS active_ticket "
    "FROM (SELECT 1) AS one LEFT JOIN users ON users.telegram_id = $2"
)
# $1 update id; $2..$7 the user (id, telegram id, username, first, last name, language; a
# NULL telegram id: no user); $8..$10 the messages' directions, texts and Telegram ids, in
# order; $11 their context. Returns whether the update id was new, and the user's row id.
# A user who had blocked the bot and writes again is active again.
APPLY = (
    "WITH recorded AS ("
    " INSERT INTO processed_updates (update_id) VALUES ($1) ON CONFLICT DO NOTHING"
    " RETURNING update_id"
    "), person AS ("
    " INSERT INTO users (id, telegram_id, username, first_name, last_name, language_code)"
    " SELECT $2, $3, $4, $5, $6, $7 FROM recorded WHERE $3::bigint IS NOT NULL"
    " ON CONFLICT (telegram_id) DO UPDATE SET username = excluded.username,"
    " first_name = excluded.first_name, last_name = excluded.last_name,"
    " language_code = excluded.language_code, is_active = true, updated_at = now()"
    " RETURNING id"
    "), logged AS ("
    " INSERT INTO conversation_messages"
    " (user_id, direction, text, telegram_message_id, context)"
    " SELECT person.id, m.direction, m.text, m.message_id, $11::jsonb"
    " FROM person, unnest($8::text[], $9::text[], $10::bigint[]) WITH ORDINALITY"
    " AS m(direction, text, message_id, n) ORDER BY m.n"
    ") "
    "SELECT EXISTS (SELECT 1 FROM recorded) AS recorded, (SELECT id FROM person) AS id"
)
LOG_OUT = (
    "INSERT INTO conversation_messages (user_id, direction, text, context)"
    " SELECT $1, $2, m.text, $4::jsonb FROM unnest($3::text[]) WITH ORDINALITY AS m(text, n)"
    " ORDER BY m.n"
)


class AlreadyApplied(Exception):
    """Another delivery of the update committed first: nothing of this one was written."""


class UserChanged(Exception):
    """The user's row was created by another update meanwhile, under another id than the one
    the handlers were given: nothing was written, and a redelivery works."""


class Seen(NamedTuple):
    applied: bool
    user_id: int | None
    blocked: bool
    # Whether the user has a ticket support goes on with (tickets.ACTIVE): without one, their
    # text goes to the catch-all answer without a read of its own.
    active_ticket: bool


@dataclass
class Intake:
    """The writes of one update; give it to the unit of work with `uow.defer` after `look`.
    Checked against the schema's rules when made (pydantic's ValidationError otherwise)."""

    update_id: int
    # The sender, registered as a user (None outside private chats and for senderless updates).
    telegram_id: int | None = None
    first_name: str = ""
    username: str | None = None
    last_name: str | None = None
    language_code: str | None = None
    # The message the update brings, logged as inbound (only with a user).
    inbound: str | None = None
    message_id: int | None = None
    logs_inbound: bool = False
    # What the handlers answered, logged as outbound (`answered`).
    outbound: list[str] = field(default_factory=list)
    _user_id: int | None = None

    def __post_init__(self) -> None:
        checked(ProcessedUpdate, update_id=self.update_id)
        if self.telegram_id is not None:
            checked(
                User,
                telegram_id=self.telegram_id,
                first_name=self.first_name,
                username=self.username,
                last_name=self.last_name,
                language_code=self.language_code,
            )
            if self.logs_inbound:
                checked(
                    ConversationMessage,
                    user_id=0,
                    text=self.inbound,
                    telegram_message_id=self.message_id,
                )

    def answered(self, texts: list[str]) -> None:
        """The texts the update answers with, logged as outbound; before the block ends."""
        for said in texts:
            checked(ConversationMessage, user_id=0, text=said)
        self.outbound = texts

    async def look(self, sql: Sql) -> Seen:
        row = await sql.fetchrow(LOOK, self.update_id, self.telegram_id)
        self._user_id = row["id"]
        return Seen(row["applied"], row["id"], row["is_blocked"], row["active_ticket"])

    async def begun(self, sql: Sql) -> None:
        await self._apply(sql, with_outbound=False, strict=True)

    async def ending(self, sql: Sql, *, begun: bool) -> None:
        if not begun:
            # Nothing the handlers did used the user's id: a row made meanwhile by another
            # update (see UserChanged) is simply the one logged against.
            await self._apply(sql, with_outbound=True, strict=False)
        elif self.outbound and self._user_id is not None:
            await sql.execute(
                LOG_OUT, self._user_id, Direction.OUT.value, self._outbound(), self._context()
            )

    async def _apply(self, sql: Sql, *, with_outbound: bool, strict: bool) -> None:
        directions: list[str] = []
        texts: list[str | None] = []
        ids: list[int | None] = []
        if self.logs_inbound:
            directions.append(Direction.IN.value)
            texts.append(self.inbound)
            ids.append(self.message_id)
        if with_outbound:
            outbound = self._outbound()
            directions += [Direction.OUT.value] * len(outbound)
            texts += outbound
            ids += [None] * len(outbound)
        row = await sql.fetchrow(
            APPLY,
            self.update_id,
            self._user_id,
            self.telegram_id,
            self.username,
            self.first_name,
            self.last_name,
            self.language_code,
            directions,
            texts,
            ids,
            self._context(),
        )
        if not row["recorded"]:
            raise AlreadyApplied(self.update_id)
        if strict and row["id"] != self._user_id:
            raise UserChanged(self.telegram_id)

    def _outbound(self) -> list[str]:
        return self.outbound if self._user_id is not None else []

    def _context(self) -> str:
        # SQLAlchemy's JSONB codec on these connections takes JSON text.
        return json.dumps({"update_id": self.update_id})
