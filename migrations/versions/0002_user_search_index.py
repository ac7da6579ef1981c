"""user search index

One trigram index over username, first and last name together, so the admin API's search
(ILIKE '%q%' on the three) is one bitmap index scan; three indexes OR-ed together cost more
than a sequential scan in the planner's eyes.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 04:05:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The expression of services.core.schema.users.search_text, as PostgreSQL prints it.
SEARCH_TEXT = (
    "((((COALESCE(username, ''::character varying))::text || ' '::text) || (first_name)::text)"
    " || ' '::text) || (COALESCE(last_name, ''::character varying))::text"
)


def upgrade() -> None:
    op.execute(
        f"CREATE INDEX ix_users_search_trgm ON users USING gin (({SEARCH_TEXT}) gin_trgm_ops)"
    )


def downgrade() -> None:
    op.execute("DROP INDEX ix_users_search_trgm")
