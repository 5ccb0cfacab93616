"""signal subscriptions and deliveries

Revision ID: 8b615300a867
Revises: 90e88e8ef7ac
Create Date: 2026-12-04 20:34:41.223571

A signal is broadcast to every instance waiting for it: signal_subscription is the read model that
finds them by name without loading any instance, and signal_delivery keeps which instance got which
signal, so a broadcast job that runs again (at-least-once) delivers nothing twice.
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa

import engine.db


# revision identifiers, used by Alembic.
revision: str = '8b615300a867'
down_revision: Union[str, Sequence[str], None] = '90e88e8ef7ac'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table('signal_delivery',
    sa.Column('signal_id', sa.String(length=200), nullable=False),
    sa.Column('instance_id', sa.String(length=36), nullable=False),
    sa.Column('delivered_at', engine.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('signal_id', 'instance_id')
    )
    op.create_table('signal_subscription',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('signal_name', sa.String(length=200), nullable=False),
    sa.Column('instance_id', sa.String(length=36), nullable=False),
    sa.Column('task_id', sa.String(length=36), nullable=False),
    sa.Column('created_at', engine.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['instance_id'], ['process_instance.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('instance_id', 'task_id', 'signal_name', name='uq_signal_subscription')
    )
    with op.batch_alter_table('signal_subscription', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_signal_subscription_signal_name'), ['signal_name'], unique=False)


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table('signal_subscription', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_signal_subscription_signal_name'))

    op.drop_table('signal_subscription')
    op.drop_table('signal_delivery')
