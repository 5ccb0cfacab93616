"""due timer index

Revision ID: a7e3c1d9f4b2
Revises: d294939af296
Create Date: 2026-12-05 12:30:00

The scheduler asks for the running, unsuspended instances whose `next_wakeup_at` has passed, in
deadline order. The plain index on `next_wakeup_at` also holds suspended instances (they keep their
deadlines) and walks past every overdue one on each tick: 20,000 suspended overdue instances made
the query 17 ms. A partial index holds only the instances that may fire.
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision: str = 'a7e3c1d9f4b2'
down_revision: Union[str, Sequence[str], None] = 'd294939af296'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_index('ix_instance_due', 'process_instance', ['next_wakeup_at'], unique=False,
                    postgresql_where=sa.text("status = 'running' AND suspended = false AND next_wakeup_at IS NOT NULL"),
                    sqlite_where=sa.text("status = 'running' AND suspended = 0 AND next_wakeup_at IS NOT NULL"))


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_index('ix_instance_due', table_name='process_instance')
