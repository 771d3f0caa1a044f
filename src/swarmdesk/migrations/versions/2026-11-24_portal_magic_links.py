"""portal magic links

The customer portal's single-use sign-in links, and portal sessions as customer sessions without
an inbox (they see the contact's conversations on every channel) that carry a CSRF token.

Revision ID: c63e207d9f32
Revises: b52d1f6c8e21
Create Date: 2026-11-24 01:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = 'c63e207d9f32'
down_revision: str | None = 'b52d1f6c8e21'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BigId = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    op.create_table('portal_magic_links',
    sa.Column('contact_id', BigId, nullable=False),
    sa.Column('email', sa.String(length=320), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('seed', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('used_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('id', BigId, autoincrement=True, nullable=False),
    sa.Column('account_id', BigId, nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_portal_magic_links_account_id_accounts'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['contact_id'], ['contacts.id'], name=op.f('fk_portal_magic_links_contact_id_contacts'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_portal_magic_links')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_portal_magic_links_token_hash'))
    )
    with op.batch_alter_table('portal_magic_links', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_portal_magic_links_account_id'), ['account_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_portal_magic_links_contact_id'), ['contact_id'], unique=False)
        batch_op.create_index('ix_portal_magic_links_email', ['account_id', 'email', 'created_at'], unique=False)

    with op.batch_alter_table('customer_sessions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('csrf_token', sa.String(length=64), nullable=True))
        batch_op.alter_column('inbox_id', existing_type=BigId, nullable=True)


def downgrade() -> None:
    # Portal sessions have no inbox: they cannot exist under the old schema.
    op.execute("DELETE FROM customer_sessions WHERE inbox_id IS NULL")
    with op.batch_alter_table('customer_sessions', schema=None) as batch_op:
        batch_op.alter_column('inbox_id', existing_type=BigId, nullable=False)
        batch_op.drop_column('csrf_token')

    with op.batch_alter_table('portal_magic_links', schema=None) as batch_op:
        batch_op.drop_index('ix_portal_magic_links_email')
        batch_op.drop_index(batch_op.f('ix_portal_magic_links_contact_id'))
        batch_op.drop_index(batch_op.f('ix_portal_magic_links_account_id'))

    op.drop_table('portal_magic_links')
