"""preferences

Customer-set contact rules (one row per contact), the proactive contacts a cap counts, and the
messages the rules held back until they may be sent (each with a delayed job).

Revision ID: f33921f4d5be
Revises: a8e648698441
Create Date: 2026-11-24 02:00:05
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = 'f33921f4d5be'
down_revision: str | None = 'a8e648698441'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BigId = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')
Json = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql')


def upgrade() -> None:
    op.create_table('contact_rules',
    sa.Column('contact_id', BigId, nullable=False),
    sa.Column('preferred_channel', sa.String(length=40), nullable=True),
    sa.Column('never_channels', Json, nullable=False),
    sa.Column('quiet_start', sa.String(length=5), nullable=True),
    sa.Column('quiet_end', sa.String(length=5), nullable=True),
    sa.Column('time_zone', sa.String(length=64), nullable=True),
    sa.Column('cap_count', sa.Integer(), nullable=True),
    sa.Column('cap_days', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('id', BigId, autoincrement=True, nullable=False),
    sa.Column('account_id', BigId, nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_contact_rules_account_id_accounts'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['contact_id'], ['contacts.id'], name=op.f('fk_contact_rules_contact_id_contacts'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_contact_rules')),
    sa.UniqueConstraint('contact_id', name=op.f('uq_contact_rules_contact_id'))
    )
    with op.batch_alter_table('contact_rules', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_contact_rules_account_id'), ['account_id'], unique=False)

    op.create_table('contact_touches',
    sa.Column('contact_id', BigId, nullable=False),
    sa.Column('conversation_id', BigId, nullable=True),
    sa.Column('message_id', BigId, nullable=True),
    sa.Column('purpose', sa.String(length=20), nullable=False),
    sa.Column('channel', sa.String(length=40), nullable=False),
    sa.Column('sent_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('id', BigId, autoincrement=True, nullable=False),
    sa.Column('account_id', BigId, nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_contact_touches_account_id_accounts'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['contact_id'], ['contacts.id'], name=op.f('fk_contact_touches_contact_id_contacts'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['conversation_id'], ['conversations.id'], name=op.f('fk_contact_touches_conversation_id_conversations'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['message_id'], ['messages.id'], name=op.f('fk_contact_touches_message_id_messages'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_contact_touches')),
    sa.UniqueConstraint('message_id', name=op.f('uq_contact_touches_message_id'))
    )
    with op.batch_alter_table('contact_touches', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_contact_touches_account_id'), ['account_id'], unique=False)
        batch_op.create_index('ix_contact_touches_contact_sent', ['contact_id', 'sent_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_contact_touches_conversation_id'), ['conversation_id'], unique=False)

    op.create_table('deferred_sends',
    sa.Column('conversation_id', BigId, nullable=False),
    sa.Column('contact_id', BigId, nullable=False),
    sa.Column('author_id', BigId, nullable=True),
    sa.Column('inbox_id', BigId, nullable=True),
    sa.Column('purpose', sa.String(length=20), nullable=False),
    sa.Column('content', sa.Text(), nullable=False),
    sa.Column('status', sa.Enum('scheduled', 'sent', 'refused', 'failed', 'cancelled', name='deferredstatus', native_enum=False, length=20), nullable=False),
    sa.Column('send_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('explanation', sa.Text(), nullable=False),
    sa.Column('message_id', BigId, nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('id', BigId, autoincrement=True, nullable=False),
    sa.Column('account_id', BigId, nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_deferred_sends_account_id_accounts'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['author_id'], ['users.id'], name=op.f('fk_deferred_sends_author_id_users'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['contact_id'], ['contacts.id'], name=op.f('fk_deferred_sends_contact_id_contacts'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['conversation_id'], ['conversations.id'], name=op.f('fk_deferred_sends_conversation_id_conversations'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['inbox_id'], ['inboxes.id'], name=op.f('fk_deferred_sends_inbox_id_inboxes'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['message_id'], ['messages.id'], name=op.f('fk_deferred_sends_message_id_messages'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_deferred_sends'))
    )
    with op.batch_alter_table('deferred_sends', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_deferred_sends_account_id'), ['account_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_deferred_sends_contact_id'), ['contact_id'], unique=False)
        batch_op.create_index('ix_deferred_sends_conversation', ['conversation_id', 'id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('deferred_sends', schema=None) as batch_op:
        batch_op.drop_index('ix_deferred_sends_conversation')
        batch_op.drop_index(batch_op.f('ix_deferred_sends_contact_id'))
        batch_op.drop_index(batch_op.f('ix_deferred_sends_account_id'))
    op.drop_table('deferred_sends')

    with op.batch_alter_table('contact_touches', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_contact_touches_conversation_id'))
        batch_op.drop_index('ix_contact_touches_contact_sent')
        batch_op.drop_index(batch_op.f('ix_contact_touches_account_id'))
    op.drop_table('contact_touches')

    with op.batch_alter_table('contact_rules', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_contact_rules_account_id'))
    op.drop_table('contact_rules')
