"""notifications and mentions

Revision ID: a41c0e5b7d10
Revises: 1b83bc4a5bf2
Create Date: 2026-11-24 01:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa  # noqa: F401
from alembic import op  # noqa: F401

revision: str = 'a41c0e5b7d10'
down_revision: str | None = '1b83bc4a5bf2'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
