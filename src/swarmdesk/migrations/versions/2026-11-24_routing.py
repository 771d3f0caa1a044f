"""routing: skills, agents' presence and capacity, queues, conversations' place in routing

Revision ID: 6a556f2c2eff
Revises: d74f318e0a43
Create Date: 2026-11-24 02:00:01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '6a556f2c2eff'
down_revision: str | None = 'd74f318e0a43'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('skills',
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('description', sa.String(length=2000), nullable=False),
    sa.Column('min_proficiency', sa.Integer(), nullable=False),
    sa.Column('inbox_ids', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('tags', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('languages', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('revision', sa.Integer(), nullable=False),
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('account_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint('min_proficiency BETWEEN 1 AND 5', name=op.f('ck_skills_min_proficiency_range')),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_skills_account_id_accounts'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_skills')),
    sa.UniqueConstraint('account_id', 'name', name=op.f('uq_skills_account_id_name'))
    )
    with op.batch_alter_table('skills', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_skills_account_id'), ['account_id'], unique=False)

    op.create_table('agent_presence',
    sa.Column('user_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('account_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('status', sa.Enum('online', 'away', 'offline', name='presencestatus', native_enum=False, length=20), nullable=False),
    sa.Column('chosen', sa.Enum('online', 'away', 'offline', name='presencestatus', native_enum=False, length=20), nullable=True),
    sa.Column('connections', sa.Integer(), nullable=False),
    sa.Column('disconnected_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('capacity', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('changed_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_assigned_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('revision', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_agent_presence_account_id_accounts'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_agent_presence_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('user_id', name=op.f('pk_agent_presence'))
    )
    with op.batch_alter_table('agent_presence', schema=None) as batch_op:
        batch_op.create_index('ix_agent_presence_account_revision', ['account_id', 'revision'], unique=False)
        batch_op.create_index('ix_agent_presence_account_status', ['account_id', 'status'], unique=False)

    op.create_table('agent_skills',
    sa.Column('user_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('skill_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('account_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('proficiency', sa.Integer(), nullable=False),
    sa.CheckConstraint('proficiency BETWEEN 1 AND 5', name=op.f('ck_agent_skills_proficiency_range')),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_agent_skills_account_id_accounts'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['skill_id'], ['skills.id'], name=op.f('fk_agent_skills_skill_id_skills'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_agent_skills_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('user_id', 'skill_id', name=op.f('pk_agent_skills'))
    )
    with op.batch_alter_table('agent_skills', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_agent_skills_account_id'), ['account_id'], unique=False)
        batch_op.create_index('ix_agent_skills_skill_proficiency', ['skill_id', 'proficiency'], unique=False)

    op.create_table('routing_queues',
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('team_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('inbox_ids', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('tags', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('strategy', sa.Enum('balanced', 'round_robin', 'sticky', 'manual', name='strategy', native_enum=False, length=20), nullable=False),
    sa.Column('relaxation', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('sticky_window_seconds', sa.Integer(), nullable=False),
    sa.Column('lifts', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('vip_attribute', sa.String(length=100), nullable=False),
    sa.Column('vip_values', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('rr_cursor', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('revision', sa.Integer(), nullable=False),
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('account_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_routing_queues_account_id_accounts'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['team_id'], ['teams.id'], name=op.f('fk_routing_queues_team_id_teams'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_routing_queues')),
    sa.UniqueConstraint('account_id', 'name', name=op.f('uq_routing_queues_account_id_name'))
    )
    with op.batch_alter_table('routing_queues', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_routing_queues_account_id'), ['account_id'], unique=False)
        batch_op.create_index('ix_routing_queues_account_position', ['account_id', 'position', 'id'], unique=False)

    op.create_table('conversation_routing',
    sa.Column('conversation_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('account_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('queue_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('state', sa.Enum('waiting', 'assigned', 'manual', 'unqueued', name='routingstate', native_enum=False, length=20), nullable=False),
    sa.Column('waiting_since', sa.DateTime(timezone=True), nullable=True),
    sa.Column('lift', sa.Integer(), nullable=False),
    sa.Column('required_skills', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('decision', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_conversation_routing_account_id_accounts'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['conversation_id'], ['conversations.id'], name=op.f('fk_conversation_routing_conversation_id_conversations'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['queue_id'], ['routing_queues.id'], name=op.f('fk_conversation_routing_queue_id_routing_queues'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('conversation_id', name=op.f('pk_conversation_routing'))
    )
    with op.batch_alter_table('conversation_routing', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_conversation_routing_account_id'), ['account_id'], unique=False)
        batch_op.create_index('ix_conversation_routing_queue_waiting', ['queue_id', 'state', 'lift', 'waiting_since'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('conversation_routing', schema=None) as batch_op:
        batch_op.drop_index('ix_conversation_routing_queue_waiting')
        batch_op.drop_index(batch_op.f('ix_conversation_routing_account_id'))

    op.drop_table('conversation_routing')
    with op.batch_alter_table('routing_queues', schema=None) as batch_op:
        batch_op.drop_index('ix_routing_queues_account_position')
        batch_op.drop_index(batch_op.f('ix_routing_queues_account_id'))

    op.drop_table('routing_queues')
    with op.batch_alter_table('agent_skills', schema=None) as batch_op:
        batch_op.drop_index('ix_agent_skills_skill_proficiency')
        batch_op.drop_index(batch_op.f('ix_agent_skills_account_id'))

    op.drop_table('agent_skills')
    with op.batch_alter_table('agent_presence', schema=None) as batch_op:
        batch_op.drop_index('ix_agent_presence_account_status')
        batch_op.drop_index('ix_agent_presence_account_revision')

    op.drop_table('agent_presence')
    with op.batch_alter_table('skills', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_skills_account_id'))

    op.drop_table('skills')
