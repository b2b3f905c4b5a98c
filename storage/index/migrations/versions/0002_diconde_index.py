"""DICONDE index: approval status, certifying inspector, indications (0014,2012)

Revision ID: i6_diconde
Revises: 0001
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "i6_diconde"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("studies", schema=None) as batch_op:
        batch_op.add_column(sa.Column("approval_status", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("name_of_physicians_reading_study", sa.Text(), nullable=True))
        batch_op.create_index(batch_op.f("ix_studies_approval_status"), ["approval_status"], unique=False)
    op.create_table(
        "indications",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("instance_id", sa.Integer(), nullable=False),
        sa.Column("indication_number", sa.Integer(), nullable=True),
        sa.Column("indication_label", sa.Text(), nullable=True),
        sa.Column("indication_type", sa.Text(), nullable=True),
        sa.Column("indication_disposition", sa.Text(), nullable=True),
        sa.Column("indication_description", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["instance_id"],
            ["instances.id"],
            name=op.f("fk_indications_instance_id_instances"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_indications")),
    )
    with op.batch_alter_table("indications", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_indications_instance_id"), ["instance_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_indications_indication_disposition"), ["indication_disposition"], unique=False
        )


def downgrade() -> None:
    op.drop_table("indications")
    with op.batch_alter_table("studies", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_studies_approval_status"))
        batch_op.drop_column("name_of_physicians_reading_study")
        batch_op.drop_column("approval_status")
