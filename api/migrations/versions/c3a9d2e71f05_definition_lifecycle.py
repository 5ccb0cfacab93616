"""definition lifecycle: latest version per key, suspension, process error count

Revision ID: c3a9d2e71f05
Revises: b854461af895
Create Date: 2026-12-04 17:50:00

Which version of a key new cases start on was "the highest version"; it becomes a flag an
administrator can move back (rollback), so the highest version of each key is marked latest here.
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa

import engine.db


# revision identifiers, used by Alembic.
revision: str = 'c3a9d2e71f05'
down_revision: Union[str, Sequence[str], None] = 'b854461af895'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    # Constant defaults ('0', not sa.false()): SQLite adds such columns in place, while an expression
    # default makes Alembic rebuild the table — which SQLite refuses once instances reference it.
    with op.batch_alter_table('process_definition', schema=None) as batch_op:
        batch_op.add_column(sa.Column('is_latest', sa.Boolean(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('suspended', sa.Boolean(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('process_errors', sa.Integer(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('last_process_error_at', engine.db.UTCDateTime(timezone=True), nullable=True))
    op.execute(
        "UPDATE process_definition SET is_latest = true WHERE version = "
        "(SELECT max(d.version) FROM process_definition d WHERE d.key = process_definition.key)")
    op.create_index('uq_definition_latest', 'process_definition', ['key'], unique=True,
                    postgresql_where=sa.text('is_latest'), sqlite_where=sa.text('is_latest'))


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_index('uq_definition_latest', table_name='process_definition')
    with op.batch_alter_table('process_definition', schema=None) as batch_op:
        batch_op.drop_column('last_process_error_at')
        batch_op.drop_column('process_errors')
        batch_op.drop_column('suspended')
        batch_op.drop_column('is_latest')
