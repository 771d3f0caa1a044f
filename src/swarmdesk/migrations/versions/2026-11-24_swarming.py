"""swarming: swarms, their members and room messages; the swarm_invite notification kind

Revision ID: a8e648698441
Revises: 18f078181775
Create Date: 2026-11-24 02:00:04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = 'a8e648698441'
down_revision: str | None = '18f078181775'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BigId = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')
ACTIVE = "status = 'active'"


def _enum(*values: str, name: str) -> sa.Enum:
    return sa.Enum(*values, name=name, native_enum=False, length=20)


def upgrade() -> None:
    op.create_table('swarms',
    sa.Column('conversation_id', BigId, nullable=False),
    sa.Column('status', _enum('active', 'ended', name='swarmstatus'), nullable=False),
    sa.Column('owner_id', BigId, nullable=True),
    sa.Column('started_by_id', BigId, nullable=True),
    sa.Column('started_by_name', sa.String(length=200), nullable=False),
    sa.Column('note', sa.String(length=1000), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('ended_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('ended_by_id', BigId, nullable=True),
    sa.Column('outcome', _enum('resolved', 'workaround', 'escalated', 'unresolved', name='swarmoutcome'), nullable=True),
    sa.Column('summary', sa.Text(), nullable=False),
    sa.Column('first_joined_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('experts_invited', sa.Integer(), nullable=False),
    sa.Column('experts_joined', sa.Integer(), nullable=False),
    sa.Column('message_count', sa.Integer(), nullable=False),
    sa.Column('resolved_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('id', BigId, autoincrement=True, nullable=False),
    sa.Column('account_id', BigId, nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_swarms_account_id_accounts'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['conversation_id'], ['conversations.id'], name=op.f('fk_swarms_conversation_id_conversations'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['ended_by_id'], ['users.id'], name=op.f('fk_swarms_ended_by_id_users'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['owner_id'], ['users.id'], name=op.f('fk_swarms_owner_id_users'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['started_by_id'], ['users.id'], name=op.f('fk_swarms_started_by_id_users'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_swarms'))
    )
    with op.batch_alter_table('swarms', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_swarms_account_id'), ['account_id'], unique=False)
        batch_op.create_index('ix_swarms_account_started', ['account_id', 'started_at'], unique=False)
        batch_op.create_index('ix_swarms_conversation_id', ['conversation_id', 'id'], unique=False)
        # One active swarm per conversation: decides a race between two starts.
        batch_op.create_index('ix_swarms_conversation_active', ['conversation_id'], unique=True,
                              sqlite_where=sa.text(ACTIVE), postgresql_where=sa.text(ACTIVE))

    op.create_table('swarm_members',
    sa.Column('swarm_id', BigId, nullable=False),
    sa.Column('user_id', BigId, nullable=False),
    sa.Column('account_id', BigId, nullable=False),
    sa.Column('role', _enum('owner', 'starter', 'expert', name='memberrole'), nullable=False),
    sa.Column('state', _enum('invited', 'joined', 'left', name='memberstate'), nullable=False),
    sa.Column('invited_by_id', BigId, nullable=True),
    sa.Column('invited_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('joined_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('left_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_swarm_members_account_id_accounts'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['swarm_id'], ['swarms.id'], name=op.f('fk_swarm_members_swarm_id_swarms'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_swarm_members_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('swarm_id', 'user_id', name=op.f('pk_swarm_members'))
    )
    with op.batch_alter_table('swarm_members', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_swarm_members_account_id'), ['account_id'], unique=False)
        batch_op.create_index('ix_swarm_members_user_id', ['user_id', 'swarm_id'], unique=False)

    op.create_table('swarm_messages',
    sa.Column('swarm_id', BigId, nullable=False),
    sa.Column('conversation_id', BigId, nullable=False),
    sa.Column('sender_id', BigId, nullable=True),
    sa.Column('sender_name', sa.String(length=200), nullable=False),
    sa.Column('content', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('id', BigId, autoincrement=True, nullable=False),
    sa.Column('account_id', BigId, nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_swarm_messages_account_id_accounts'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['conversation_id'], ['conversations.id'], name=op.f('fk_swarm_messages_conversation_id_conversations'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['sender_id'], ['users.id'], name=op.f('fk_swarm_messages_sender_id_users'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['swarm_id'], ['swarms.id'], name=op.f('fk_swarm_messages_swarm_id_swarms'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_swarm_messages'))
    )
    with op.batch_alter_table('swarm_messages', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_swarm_messages_account_id'), ['account_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_swarm_messages_conversation_id'), ['conversation_id'], unique=False)
        batch_op.create_index('ix_swarm_messages_swarm_id_id', ['swarm_id', 'id'], unique=False)

    # notifications.kind gains 'swarm_invite'. The column is a non-native enum: VARCHAR(20) with no
    # CHECK constraint (SQLAlchemy creates none for it), and the new value fits, so the database
    # needs no change. A batch ALTER here would rebuild the notifications table on SQLite (and
    # lock it on PostgreSQL) for nothing; this note records when the value appeared.


def downgrade() -> None:
    op.execute("DELETE FROM notifications WHERE kind = 'swarm_invite'")
    with op.batch_alter_table('swarm_messages', schema=None) as batch_op:
        batch_op.drop_index('ix_swarm_messages_swarm_id_id')
        batch_op.drop_index(batch_op.f('ix_swarm_messages_conversation_id'))
        batch_op.drop_index(batch_op.f('ix_swarm_messages_account_id'))
    op.drop_table('swarm_messages')
    with op.batch_alter_table('swarm_members', schema=None) as batch_op:
        batch_op.drop_index('ix_swarm_members_user_id')
        batch_op.drop_index(batch_op.f('ix_swarm_members_account_id'))
    op.drop_table('swarm_members')
    with op.batch_alter_table('swarms', schema=None) as batch_op:
        batch_op.drop_index('ix_swarms_conversation_active', sqlite_where=sa.text(ACTIVE),
                            postgresql_where=sa.text(ACTIVE))
        batch_op.drop_index('ix_swarms_conversation_id')
        batch_op.drop_index('ix_swarms_account_started')
        batch_op.drop_index(batch_op.f('ix_swarms_account_id'))
    op.drop_table('swarms')
