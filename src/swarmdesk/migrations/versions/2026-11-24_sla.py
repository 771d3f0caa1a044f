"""sla

Revision ID: 96d89fc6f80c
Revises: 6a556f2c2eff
Create Date: 2026-11-24 02:00:02
"""

from collections.abc import Sequence

import sqlalchemy as sa  # noqa: F401
from alembic import op  # noqa: F401

revision: str = '96d89fc6f80c'
down_revision: str | None = '6a556f2c2eff'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
