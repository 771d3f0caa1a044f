"""automation: rules and their versions, macros, the execution log and time rules' timers

Revision ID: 18f078181775
Revises: 96d89fc6f80c
Create Date: 2026-11-24 02:00:03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '18f078181775'
down_revision: str | None = '96d89fc6f80c'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('automation_rules',
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('current_version_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('watch', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('created_by', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('deleted_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('account_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_automation_rules_account_id_accounts'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['created_by'], ['users.id'], name=op.f('fk_automation_rules_created_by_users'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_automation_rules'))
    )
    with op.batch_alter_table('automation_rules', schema=None) as batch_op:
        batch_op.create_index('ix_automation_rules_account_enabled', ['account_id', 'enabled', 'position', 'id'], unique=False)
        batch_op.create_index(batch_op.f('ix_automation_rules_account_id'), ['account_id'], unique=False)

    op.create_table('macros',
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('description', sa.String(length=2000), nullable=False),
    sa.Column('actions', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('owner_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('created_by', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('account_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_macros_account_id_accounts'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['created_by'], ['users.id'], name=op.f('fk_macros_created_by_users'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['owner_id'], ['users.id'], name=op.f('fk_macros_owner_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_macros'))
    )
    with op.batch_alter_table('macros', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_macros_account_id'), ['account_id'], unique=False)
        batch_op.create_index('ix_macros_account_owner', ['account_id', 'owner_id', 'name'], unique=False)

    op.create_table('automation_rule_versions',
    sa.Column('rule_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('description', sa.String(length=2000), nullable=False),
    sa.Column('trigger', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('conditions', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('actions', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('max_runs_per_hour', sa.Integer(), nullable=False),
    sa.Column('created_by', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('account_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_automation_rule_versions_account_id_accounts'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['created_by'], ['users.id'], name=op.f('fk_automation_rule_versions_created_by_users'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['rule_id'], ['automation_rules.id'], name=op.f('fk_automation_rule_versions_rule_id_automation_rules'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_automation_rule_versions')),
    sa.UniqueConstraint('rule_id', 'version', name=op.f('uq_automation_rule_versions_rule_id_version'))
    )
    with op.batch_alter_table('automation_rule_versions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_automation_rule_versions_account_id'), ['account_id'], unique=False)

    op.create_table('automation_executions',
    sa.Column('kind', sa.String(length=10), nullable=False),
    sa.Column('rule_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('rule_version_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('rule_version', sa.Integer(), nullable=True),
    sa.Column('macro_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('conversation_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('trigger_key', sa.String(length=100), nullable=False),
    sa.Column('trigger_event_uid', sa.String(length=64), nullable=True),
    sa.Column('trigger_event_type', sa.String(length=100), nullable=True),
    sa.Column('outcome', sa.Enum('applied', 'partial', 'failed', 'not_matched', 'skipped', name='executionoutcome', native_enum=False, length=20), nullable=False),
    sa.Column('reason', sa.String(length=500), nullable=True),
    sa.Column('conditions', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('actions', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('cause', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.Column('actor_user_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('account_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_automation_executions_account_id_accounts'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['actor_user_id'], ['users.id'], name=op.f('fk_automation_executions_actor_user_id_users'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['conversation_id'], ['conversations.id'], name=op.f('fk_automation_executions_conversation_id_conversations'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['macro_id'], ['macros.id'], name=op.f('fk_automation_executions_macro_id_macros'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['rule_id'], ['automation_rules.id'], name=op.f('fk_automation_executions_rule_id_automation_rules'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['rule_version_id'], ['automation_rule_versions.id'], name='fk_automation_executions_version', ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_automation_executions')),
    sa.UniqueConstraint('rule_version_id', 'conversation_id', 'trigger_key', name='uq_automation_executions_trigger')
    )
    with op.batch_alter_table('automation_executions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_automation_executions_account_id'), ['account_id'], unique=False)
        batch_op.create_index('ix_automation_executions_account_id_id', ['account_id', 'id'], unique=False)
        batch_op.create_index('ix_automation_executions_conversation', ['conversation_id', 'id'], unique=False)
        batch_op.create_index(batch_op.f('ix_automation_executions_macro_id'), ['macro_id'], unique=False)
        batch_op.create_index('ix_automation_executions_rule_conversation', ['rule_id', 'conversation_id', 'created_at'], unique=False)

    op.create_table('automation_timers',
    sa.Column('rule_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('rule_version_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('conversation_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('entry_key', sa.String(length=100), nullable=False),
    sa.Column('entered_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('due_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('state', sa.Enum('scheduled', 'fired', 'cancelled', name='timerstate', native_enum=False, length=20), nullable=False),
    sa.Column('reason', sa.String(length=500), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('account_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_automation_timers_account_id_accounts'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['conversation_id'], ['conversations.id'], name=op.f('fk_automation_timers_conversation_id_conversations'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['rule_id'], ['automation_rules.id'], name=op.f('fk_automation_timers_rule_id_automation_rules'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['rule_version_id'], ['automation_rule_versions.id'], name=op.f('fk_automation_timers_rule_version_id_automation_rule_versions'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_automation_timers')),
    sa.UniqueConstraint('rule_version_id', 'conversation_id', 'entry_key', name='uq_automation_timers_entry')
    )
    with op.batch_alter_table('automation_timers', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_automation_timers_account_id'), ['account_id'], unique=False)
        batch_op.create_index('ix_automation_timers_conversation_state', ['conversation_id', 'state'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('automation_timers', schema=None) as batch_op:
        batch_op.drop_index('ix_automation_timers_conversation_state')
        batch_op.drop_index(batch_op.f('ix_automation_timers_account_id'))

    op.drop_table('automation_timers')
    with op.batch_alter_table('automation_executions', schema=None) as batch_op:
        batch_op.drop_index('ix_automation_executions_rule_conversation')
        batch_op.drop_index(batch_op.f('ix_automation_executions_macro_id'))
        batch_op.drop_index('ix_automation_executions_conversation')
        batch_op.drop_index('ix_automation_executions_account_id_id')
        batch_op.drop_index(batch_op.f('ix_automation_executions_account_id'))

    op.drop_table('automation_executions')
    with op.batch_alter_table('automation_rule_versions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_automation_rule_versions_account_id'))

    op.drop_table('automation_rule_versions')
    with op.batch_alter_table('macros', schema=None) as batch_op:
        batch_op.drop_index('ix_macros_account_owner')
        batch_op.drop_index(batch_op.f('ix_macros_account_id'))

    op.drop_table('macros')
    with op.batch_alter_table('automation_rules', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_automation_rules_account_id'))
        batch_op.drop_index('ix_automation_rules_account_enabled')

    op.drop_table('automation_rules')
