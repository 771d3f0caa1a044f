"""contact notes

Revision ID: d74f318e0a43
Revises: c63e207d9f32
Create Date: 2026-11-24 01:05:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = 'd74f318e0a43'
down_revision: str | None = 'c63e207d9f32'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('contact_notes',
    sa.Column('contact_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('author_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('account_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_contact_notes_account_id_accounts'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['author_id'], ['users.id'], name=op.f('fk_contact_notes_author_id_users'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['contact_id'], ['contacts.id'], name=op.f('fk_contact_notes_contact_id_contacts'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_contact_notes'))
    )
    with op.batch_alter_table('contact_notes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_contact_notes_account_id'), ['account_id'], unique=False)
        batch_op.create_index('ix_contact_notes_contact_id', ['contact_id', 'id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('contact_notes', schema=None) as batch_op:
        batch_op.drop_index('ix_contact_notes_contact_id')
        batch_op.drop_index(batch_op.f('ix_contact_notes_account_id'))
    op.drop_table('contact_notes')
