"""inbox views, read state and canned responses

Revision ID: b52d1f6c8e21
Revises: a41c0e5b7d10
Create Date: 2026-11-24 01:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa  # noqa: F401
from alembic import op  # noqa: F401

revision: str = 'b52d1f6c8e21'
down_revision: str | None = 'a41c0e5b7d10'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
