"""login sessions

Revision ID: 3f2a9c4d1e07
Revises: edcdc4bc0f14
Create Date: 2026-12-05 07:40:00

A row per login (api.accounts.LoginSession): the tokens issued for it carry its id, so logout,
disabling a user and resetting a password stop those tokens at once. Tokens issued before this
migration carry no session and are refused: everyone logs in again once.
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa

import engine.db


# revision identifiers, used by Alembic.
revision: str = '3f2a9c4d1e07'
down_revision: Union[str, Sequence[str], None] = 'edcdc4bc0f14'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table(
        'login_session',
        sa.Column('id', sa.String(length=32), nullable=False),
        sa.Column('username', sa.String(length=100), nullable=False),
        sa.Column('created_at', engine.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column('expires_at', engine.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column('revoked_at', engine.db.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint('id'),
    )
    with op.batch_alter_table('login_session', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_login_session_username'), ['username'], unique=False)


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table('login_session', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_login_session_username'))
    op.drop_table('login_session')
