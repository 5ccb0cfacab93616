"""assessment indicators and evaluations

Revision ID: a7c41e9d2b60
Revises: 3f2a9c4d1e07
Create Date: 2026-12-05 08:00:00

What the indicators need of a finished case's assessment record (workflows/indicators.py): the
handling deadline it was due by, when handling ended and who reviewed, dispatched and verified it
(all nullable: older records fall back to their closing time and no post); indexes for a period's
rows. New tables: assessment_config (a tenant's weights, bands and denominator rules from a date,
append-only) and assessment_evaluation (a published period's figures with the configuration used).
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa

import engine.db


# revision identifiers, used by Alembic.
revision: str = 'a7c41e9d2b60'
down_revision: Union[str, Sequence[str], None] = '3f2a9c4d1e07'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    with op.batch_alter_table('case_assessment', schema=None) as batch_op:
        batch_op.add_column(sa.Column('due_at', engine.db.UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column('handled_at', engine.db.UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column('reviewer', sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column('dispatcher', sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column('verifier', sa.String(length=200), nullable=True))
        batch_op.create_index('ix_assessment_tenant_closed', ['tenant', 'closed_at'], unique=False)
        batch_op.create_index('ix_assessment_tenant_due', ['tenant', 'due_at'], unique=False)
        batch_op.create_index('ix_assessment_tenant_filed', ['tenant', 'filed_at'], unique=False)
    op.create_table(
        'assessment_config',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('tenant', sa.String(length=12), nullable=False),
        sa.Column('effective_from', sa.Date(), nullable=False),
        sa.Column('body', sa.JSON(), nullable=False),
        sa.Column('set_by', sa.String(length=200), nullable=False),
        sa.Column('set_at', engine.db.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_assessment_config_tenant_from', 'assessment_config', ['tenant', 'effective_from'])
    op.create_table(
        'assessment_evaluation',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('tenant', sa.String(length=12), nullable=False),
        sa.Column('period', sa.String(length=40), nullable=False),
        sa.Column('period_from', engine.db.UTCDateTime(), nullable=False),
        sa.Column('period_to', engine.db.UTCDateTime(), nullable=False),
        sa.Column('by', sa.String(length=100), nullable=False),
        sa.Column('config_effective_from', sa.Date(), nullable=False),
        sa.Column('config', sa.JSON(), nullable=False),
        sa.Column('figures', sa.JSON(), nullable=False),
        sa.Column('published_by', sa.String(length=200), nullable=False),
        sa.Column('published_at', engine.db.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('tenant', 'period_from', 'period_to', 'by', name='uq_assessment_evaluation'),
    )


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_table('assessment_evaluation')
    op.drop_index('ix_assessment_config_tenant_from', table_name='assessment_config')
    op.drop_table('assessment_config')
    with op.batch_alter_table('case_assessment', schema=None) as batch_op:
        batch_op.drop_index('ix_assessment_tenant_filed')
        batch_op.drop_index('ix_assessment_tenant_due')
        batch_op.drop_index('ix_assessment_tenant_closed')
        batch_op.drop_column('verifier')
        batch_op.drop_column('dispatcher')
        batch_op.drop_column('reviewer')
        batch_op.drop_column('handled_at')
        batch_op.drop_column('due_at')
