"""outbox: withdrawn status

A queued message can be taken back before it is sent (the reminder of a cancelled booking).
The status column is a string with a CHECK constraint, so the new value is a wider column and
a new constraint.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22 05:45:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CONSTRAINT = "ck_outbox_outbox_status"


def _constrain(*values: str) -> None:
    op.drop_constraint(op.f(CONSTRAINT), "outbox", type_="check")
    listed = ", ".join(f"'{value}'" for value in values)
    op.create_check_constraint(op.f(CONSTRAINT), "outbox", f"status IN ({listed})")


def upgrade() -> None:
    op.alter_column("outbox", "status", type_=sa.String(9), existing_nullable=False)
    _constrain("pending", "sent", "failed", "withdrawn")


def downgrade() -> None:
    # A withdrawn message was never sent: as far as the old schema knows, it failed.
    op.execute("UPDATE outbox SET status = 'failed' WHERE status = 'withdrawn'")
    _constrain("pending", "sent", "failed")
    op.alter_column("outbox", "status", type_=sa.String(7), existing_nullable=False)
