"""automation

Revision ID: 18f078181775
Revises: 96d89fc6f80c
Create Date: 2026-11-24 02:00:03
"""

from collections.abc import Sequence

import sqlalchemy as sa  # noqa: F401
from alembic import op  # noqa: F401

revision: str = '18f078181775'
down_revision: str | None = '96d89fc6f80c'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
