"""audit keys, chain heads and checkpoints

Revision ID: c81f4e2a9d36
Revises: a7e3c1d9f4b2
Create Date: 2026-12-05 13:00:00

Events carry the id of the HMAC key that signed them (NULL: the plain SHA-256 of the events written
before, which still verify). The system and anchor chains keep their heads in `audit_chain_head`;
`audit_checkpoint` holds signed checkpoints of the chain heads (engine/audit).
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision: str = 'c81f4e2a9d36'
down_revision: Union[str, Sequence[str], None] = 'a7e3c1d9f4b2'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

GENESIS = "0" * 64


def upgrade() -> None:
    """Upgrade schema."""
    with op.batch_alter_table('audit_event', schema=None) as batch_op:
        batch_op.add_column(sa.Column('key_id', sa.String(length=16), nullable=True))
    op.create_table(
        'audit_chain_head',
        sa.Column('chain', sa.String(length=36), nullable=False),
        sa.Column('hash', sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint('chain'),
    )
    # The heads as they are: the system chain's last event (plain SHA-256 until now); no anchor yet.
    op.execute(f"INSERT INTO audit_chain_head (chain, hash) SELECT 'system', COALESCE((SELECT hash FROM audit_event "
               f"WHERE chain = 'system' ORDER BY id DESC LIMIT 1), '{GENESIS}')")
    op.execute(f"INSERT INTO audit_chain_head (chain, hash) VALUES ('anchor', '{GENESIS}')")
    op.create_table(
        'audit_checkpoint',
        sa.Column('seq', sa.Integer(), autoincrement=False, nullable=False),
        sa.Column('at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('taken_by', sa.String(length=200), nullable=False),
        sa.Column('max_event_id', sa.BigInteger(), nullable=False),
        sa.Column('legacy_until', sa.BigInteger(), nullable=False),
        sa.Column('heads', sa.JSON(), nullable=False),
        sa.Column('prev_signature', sa.String(length=64), nullable=False),
        sa.Column('key_id', sa.String(length=16), nullable=False),
        sa.Column('signature', sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint('seq'),
    )


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_table('audit_checkpoint')
    op.drop_table('audit_chain_head')
    with op.batch_alter_table('audit_event', schema=None) as batch_op:
        batch_op.drop_column('key_id')
