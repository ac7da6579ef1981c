"""user search statistics

The planner estimates how many users an ILIKE '%q%' search matches from a sample of the
search expression (ix_users_search_trgm's statistics). With the default 100 histogram
entries, one sampled entry that happens to match a rare term makes the estimate a hundred
times too high: the planner then walks every user newest first instead of using the trigram
index (about one ANALYZE in a hundred on 100,000 users). A thousand entries keep the estimate
of a rare term rare (0 misplans in 400 ANALYZEs), for a little more ANALYZE time.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03 18:50:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("ALTER INDEX ix_users_search_trgm ALTER COLUMN 1 SET STATISTICS 1000")


def downgrade() -> None:
    op.execute("ALTER INDEX ix_users_search_trgm ALTER COLUMN 1 SET STATISTICS -1")
