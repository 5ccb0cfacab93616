"""patrol targets plans and tasks

Revision ID: d294939af296
Revises: a7c41e9d2b60
Create Date: 2026-12-05 07:58:12.296337

Patrol (网格巡查, workflows/patrol_*.py): targets with a class, a point and a unit; a tenant's plans
(grid level, target class, cadence, times, night); one patrol_task per visit a plan wants (unique per
target, level, night and slot start: a slot is opened once); patrol_finding links a visit to the cases
filed from it. New tables only.
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa

import engine.db


# revision identifiers, used by Alembic.
revision: str = 'd294939af296'
down_revision: Union[str, Sequence[str], None] = 'a7c41e9d2b60'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table('patrol_finding',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('patrol_task_id', sa.String(length=32), nullable=False),
    sa.Column('case_id', sa.String(length=40), nullable=False),
    sa.Column('outcome', sa.String(length=20), nullable=False),
    sa.Column('created_by', sa.String(length=200), nullable=False),
    sa.Column('created_at', engine.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('lon', sa.Float(), nullable=False),
    sa.Column('lat', sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('patrol_task_id', 'case_id', name='uq_patrol_finding')
    )
    with op.batch_alter_table('patrol_finding', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_patrol_finding_patrol_task_id'), ['patrol_task_id'], unique=False)

    op.create_table('patrol_plan',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('tenant', sa.String(length=12), nullable=False),
    sa.Column('grid_level', sa.String(length=10), nullable=False),
    sa.Column('target_class', sa.String(length=20), nullable=False),
    sa.Column('cadence', sa.String(length=20), nullable=False),
    sa.Column('times', sa.Integer(), nullable=False),
    sa.Column('night', sa.Boolean(), nullable=False),
    sa.Column('updated_by', sa.String(length=200), nullable=False),
    sa.Column('updated_at', engine.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('tenant', 'grid_level', 'target_class', 'night', name='uq_patrol_plan')
    )
    with op.batch_alter_table('patrol_plan', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_patrol_plan_tenant'), ['tenant'], unique=False)

    op.create_table('patrol_target',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('tenant', sa.String(length=12), nullable=False),
    sa.Column('code', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('target_class', sa.String(length=20), nullable=False),
    sa.Column('lon', sa.Float(), nullable=False),
    sa.Column('lat', sa.Float(), nullable=False),
    sa.Column('grid_code', sa.String(length=40), nullable=False),
    sa.Column('source_mn', sa.String(length=64), nullable=True),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('created_at', engine.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', engine.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('tenant', 'code', name='uq_patrol_target_code')
    )
    with op.batch_alter_table('patrol_target', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_patrol_target_grid_code'), ['grid_code'], unique=False)
        batch_op.create_index(batch_op.f('ix_patrol_target_tenant'), ['tenant'], unique=False)

    op.create_table('patrol_task',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('tenant', sa.String(length=12), nullable=False),
    sa.Column('target_id', sa.Integer(), nullable=False),
    sa.Column('grid_level', sa.String(length=10), nullable=False),
    sa.Column('grid_code', sa.String(length=40), nullable=False),
    sa.Column('cadence', sa.String(length=20), nullable=False),
    sa.Column('night', sa.Boolean(), nullable=False),
    sa.Column('slot_start', engine.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('slot_end', engine.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('close_at', engine.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('inspector', sa.String(length=200), nullable=True),
    sa.Column('instance_id', sa.String(length=36), nullable=True),
    sa.Column('status', sa.String(length=12), nullable=False),
    sa.Column('visited_at', engine.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('on_time', sa.Boolean(), nullable=True),
    sa.Column('finding', sa.String(length=20), nullable=True),
    sa.Column('note', sa.String(length=2000), nullable=True),
    sa.Column('created_at', engine.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('ended_at', engine.db.UTCDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('target_id', 'grid_level', 'night', 'slot_start', name='uq_patrol_task_slot')
    )
    with op.batch_alter_table('patrol_task', schema=None) as batch_op:
        batch_op.create_index('ix_patrol_task_due', ['tenant', 'slot_end'], unique=False)
        batch_op.create_index('ix_patrol_task_instance', ['instance_id'], unique=False)



def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table('patrol_task', schema=None) as batch_op:
        batch_op.drop_index('ix_patrol_task_instance')
        batch_op.drop_index('ix_patrol_task_due')

    op.drop_table('patrol_task')
    with op.batch_alter_table('patrol_target', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_patrol_target_tenant'))
        batch_op.drop_index(batch_op.f('ix_patrol_target_grid_code'))

    op.drop_table('patrol_target')
    with op.batch_alter_table('patrol_plan', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_patrol_plan_tenant'))

    op.drop_table('patrol_plan')
    with op.batch_alter_table('patrol_finding', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_patrol_finding_patrol_task_id'))

    op.drop_table('patrol_finding')
