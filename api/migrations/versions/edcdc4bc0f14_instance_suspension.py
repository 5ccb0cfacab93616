"""instance suspension

Revision ID: edcdc4bc0f14
Revises: 65dcf061b752
Create Date: 2026-12-04 21:13:28.997127

An administrator may suspend a running instance (engine/suspension.py): while suspended it completes
no task, fires no timer and takes messages into the buffer only. A constant default ('0') adds the
column in place on SQLite, where rebuilding process_instance is refused once rows reference it.
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision: str = 'edcdc4bc0f14'
down_revision: Union[str, Sequence[str], None] = '65dcf061b752'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    with op.batch_alter_table('process_instance', schema=None) as batch_op:
        batch_op.add_column(sa.Column('suspended', sa.Boolean(), server_default='0', nullable=False))


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table('process_instance', schema=None) as batch_op:
        batch_op.drop_column('suspended')
