"""preferences

Revision ID: f33921f4d5be
Revises: a8e648698441
Create Date: 2026-11-24 02:00:05
"""

from collections.abc import Sequence

import sqlalchemy as sa  # noqa: F401
from alembic import op  # noqa: F401

revision: str = 'f33921f4d5be'
down_revision: str | None = 'a8e648698441'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
