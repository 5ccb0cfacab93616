"""time rules, deferrals and duty kinds

Revision ID: 90e88e8ef7ac
Revises: c3a9d2e71f05
Create Date: 2026-12-04 20:29:55

Time limits per category and stage with their clock (time_rule), 缓办 (case_deferral and the
case's deferred_until), the watch a duty shift belongs to, and what assessment keeps of review,
dispatch and deferral.
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa

import engine.db


# revision identifiers, used by Alembic.
revision: str = '90e88e8ef7ac'
down_revision: Union[str, Sequence[str], None] = 'c3a9d2e71f05'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table('case_deferral',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('case_id', sa.String(length=40), nullable=False),
    sa.Column('reason', sa.String(length=500), nullable=False),
    sa.Column('requested_by', sa.String(length=200), nullable=True),
    sa.Column('approved_by', sa.String(length=200), nullable=True),
    sa.Column('until', engine.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('started_at', engine.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('remaining_seconds', sa.Integer(), nullable=False),
    sa.Column('ended_at', engine.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('ended_how', sa.String(length=20), nullable=True),
    sa.ForeignKeyConstraint(['case_id'], ['env_case.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('case_deferral', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_case_deferral_case_id'), ['case_id'], unique=False)

    op.create_table('time_rule',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('tenant', sa.String(length=12), nullable=False),
    sa.Column('category', sa.String(length=50), nullable=False),
    sa.Column('stage', sa.String(length=20), nullable=False),
    sa.Column('effective_from', engine.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('limit_minutes', sa.Integer(), nullable=False),
    sa.Column('clock', sa.String(length=10), nullable=False),
    sa.Column('set_by', sa.String(length=200), nullable=False),
    sa.Column('set_at', engine.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['category'], ['category.code'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('category', 'effective_from', 'stage', name='uq_time_rule')
    )
    with op.batch_alter_table('time_rule', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_time_rule_tenant'), ['tenant'], unique=False)

    with op.batch_alter_table('case_assessment', schema=None) as batch_op:
        batch_op.add_column(sa.Column('reviewed_on_time', sa.Boolean(), nullable=True))
        batch_op.add_column(sa.Column('dispatched_on_time', sa.Boolean(), nullable=True))
        batch_op.add_column(sa.Column('deferrals', sa.Integer(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('deferred_seconds', sa.Integer(), server_default='0', nullable=False))

    with op.batch_alter_table('duty_shift', schema=None) as batch_op:
        batch_op.add_column(sa.Column('kind', sa.String(length=10), server_default='day', nullable=False))

    with op.batch_alter_table('env_case', schema=None) as batch_op:
        batch_op.add_column(sa.Column('deferred_until', engine.db.UTCDateTime(timezone=True), nullable=True))



def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table('env_case', schema=None) as batch_op:
        batch_op.drop_column('deferred_until')

    with op.batch_alter_table('duty_shift', schema=None) as batch_op:
        batch_op.drop_column('kind')

    with op.batch_alter_table('case_assessment', schema=None) as batch_op:
        batch_op.drop_column('deferred_seconds')
        batch_op.drop_column('deferrals')
        batch_op.drop_column('dispatched_on_time')
        batch_op.drop_column('reviewed_on_time')

    with op.batch_alter_table('time_rule', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_time_rule_tenant'))

    op.drop_table('time_rule')
    with op.batch_alter_table('case_deferral', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_case_deferral_case_id'))

    op.drop_table('case_deferral')
