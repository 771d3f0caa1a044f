"""swarming

Revision ID: a8e648698441
Revises: 18f078181775
Create Date: 2026-11-24 02:00:04
"""

from collections.abc import Sequence

import sqlalchemy as sa  # noqa: F401
from alembic import op  # noqa: F401

revision: str = 'a8e648698441'
down_revision: str | None = '18f078181775'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
