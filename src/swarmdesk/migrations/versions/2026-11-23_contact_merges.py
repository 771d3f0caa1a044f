"""contact merges

Revision ID: 16ae5b0cd73e
Revises: 147c8df7bd67
Create Date: 2026-11-23 22:31:30.864810
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '16ae5b0cd73e'
down_revision: str | None = '147c8df7bd67'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Two new tables, and on contacts a nullable self-reference with its index.
    op.create_table('contact_merge_suggestions',
    sa.Column('contact_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('candidate_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('score', sa.Double(), nullable=False),
    sa.Column('reasons', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('status', sa.Enum('open', 'accepted', 'dismissed', name='suggestionstatus', native_enum=False, length=20), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('decided_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('decided_by_user_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('account_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_contact_merge_suggestions_account_id_accounts'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['candidate_id'], ['contacts.id'], name=op.f('fk_contact_merge_suggestions_candidate_id_contacts'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['contact_id'], ['contacts.id'], name=op.f('fk_contact_merge_suggestions_contact_id_contacts'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['decided_by_user_id'], ['users.id'], name=op.f('fk_contact_merge_suggestions_decided_by_user_id_users'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_contact_merge_suggestions')),
    sa.UniqueConstraint('contact_id', 'candidate_id', name=op.f('uq_contact_merge_suggestions_contact_id_candidate_id'))
    )
    op.create_index(op.f('ix_contact_merge_suggestions_account_id'), 'contact_merge_suggestions', ['account_id'])
    op.create_index(op.f('ix_contact_merge_suggestions_candidate_id'), 'contact_merge_suggestions', ['candidate_id'])
    op.create_index('ix_contact_merge_suggestions_queue', 'contact_merge_suggestions',
                    ['account_id', 'status', 'score', 'id'])

    op.create_table('contact_merges',
    sa.Column('survivor_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('merged_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('actor_user_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('moved', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('undone_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('undone_by_user_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('account_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_contact_merges_account_id_accounts'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['actor_user_id'], ['users.id'], name=op.f('fk_contact_merges_actor_user_id_users'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['merged_id'], ['contacts.id'], name=op.f('fk_contact_merges_merged_id_contacts'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['survivor_id'], ['contacts.id'], name=op.f('fk_contact_merges_survivor_id_contacts'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['undone_by_user_id'], ['users.id'], name=op.f('fk_contact_merges_undone_by_user_id_users'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_contact_merges'))
    )
    op.create_index(op.f('ix_contact_merges_account_id'), 'contact_merges', ['account_id'])
    op.create_index(op.f('ix_contact_merges_merged_id'), 'contact_merges', ['merged_id'])
    op.create_index(op.f('ix_contact_merges_survivor_id'), 'contact_merges', ['survivor_id'])

    # SQLite cannot add a foreign key to an existing table: batch mode rebuilds contacts there, once
    # (PostgreSQL gets plain ALTERs). Alembic's migration connection has foreign keys off, so the
    # rebuild's DROP of the old table cascades nowhere.
    with op.batch_alter_table('contacts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('merged_into_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'),
                                      nullable=True))
        batch_op.create_foreign_key(batch_op.f('fk_contacts_merged_into_id_contacts'), 'contacts',
                                    ['merged_into_id'], ['id'], ondelete='SET NULL')
    op.create_index(op.f('ix_contacts_merged_into_id'), 'contacts', ['merged_into_id'])


def downgrade() -> None:
    op.drop_index(op.f('ix_contacts_merged_into_id'), table_name='contacts')
    with op.batch_alter_table('contacts', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_contacts_merged_into_id_contacts'), type_='foreignkey')
        batch_op.drop_column('merged_into_id')
    op.drop_table('contact_merges')
    op.drop_table('contact_merge_suggestions')
