"""a person's username is unique whatever its case

Revision ID: b3d8e5f1a2c7
Revises: c81f4e2a9d36
Create Date: 2026-12-06 19:30:00

Tasks, duty shifts and logins find a member of staff by username; `Bob` and `bob` on two people
would be two people a login could be taken for. The staff register checks it, and this index keeps
it under concurrent registrations.
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision: str = 'b3d8e5f1a2c7'
down_revision: Union[str, Sequence[str], None] = 'c81f4e2a9d36'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_index('uq_person_username_lower', 'person', [sa.text('lower(username)')], unique=True)


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_index('uq_person_username_lower', table_name='person')
