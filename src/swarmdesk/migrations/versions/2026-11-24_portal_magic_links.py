"""portal magic links

Revision ID: c63e207d9f32
Revises: b52d1f6c8e21
Create Date: 2026-11-24 01:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa  # noqa: F401
from alembic import op  # noqa: F401

revision: str = 'c63e207d9f32'
down_revision: str | None = 'b52d1f6c8e21'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
