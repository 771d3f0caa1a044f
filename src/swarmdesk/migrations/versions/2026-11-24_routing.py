"""routing

Revision ID: 6a556f2c2eff
Revises: d74f318e0a43
Create Date: 2026-11-24 02:00:01
"""

from collections.abc import Sequence

import sqlalchemy as sa  # noqa: F401
from alembic import op  # noqa: F401

revision: str = '6a556f2c2eff'
down_revision: str | None = 'd74f318e0a43'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
