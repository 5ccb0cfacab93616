"""decision definitions

Revision ID: 65dcf061b752
Revises: b5206f3c84d7
Create Date: 2026-12-04 21:03:48.211763

DMN decision tables deployed and versioned (issue 11): one row per version of a decision, keyed by
the decision's id, with the file it came in, its hit policy and the deployment that carried it. A new
table only: nothing existing is rebuilt, so a database holding data upgrades in place on SQLite too
(autogenerate also proposed process_definition's deployment foreign key, which b5206f3c84d7 leaves to
PostgreSQL on purpose; it is not repeated here).
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa

import engine.db


# revision identifiers, used by Alembic.
revision: str = '65dcf061b752'
down_revision: Union[str, Sequence[str], None] = 'b5206f3c84d7'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table('decision_definition',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('key', sa.String(length=200), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=400), nullable=True),
    sa.Column('hit_policy', sa.String(length=20), nullable=False),
    sa.Column('dmn_xml', sa.Text(), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('deployed_by', sa.String(length=200), nullable=False),
    sa.Column('deployed_at', engine.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('deployment_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.ForeignKeyConstraint(['deployment_id'], ['deployment.id'], name='fk_decision_deployment'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('key', 'sha256', name='uq_decision_key_sha256'),
    sa.UniqueConstraint('key', 'version', name='uq_decision_key_version')
    )
    op.create_index('ix_decision_definition_deployment_id', 'decision_definition', ['deployment_id'], unique=False)
    op.create_index('ix_decision_definition_key', 'decision_definition', ['key'], unique=False)


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_index('ix_decision_definition_key', table_name='decision_definition')
    op.drop_index('ix_decision_definition_deployment_id', table_name='decision_definition')
    op.drop_table('decision_definition')
