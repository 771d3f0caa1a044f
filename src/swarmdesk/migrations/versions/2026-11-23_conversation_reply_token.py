"""conversation reply token

Revision ID: 5e0ff599c8fe
Revises: 251dc346c74a
Create Date: 2026-11-23 22:16:12.492127
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '5e0ff599c8fe'
down_revision: str | None = '251dc346c74a'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A nullable column and a unique index: no table rebuild on SQLite.
    op.add_column('conversations', sa.Column('reply_token', sa.String(length=64), nullable=True))
    op.create_index(op.f('ix_conversations_reply_token'), 'conversations', ['reply_token'], unique=True)


def downgrade() -> None:
    op.drop_index(op.f('ix_conversations_reply_token'), table_name='conversations')
    with op.batch_alter_table('conversations', schema=None) as batch_op:
        batch_op.drop_column('reply_token')
