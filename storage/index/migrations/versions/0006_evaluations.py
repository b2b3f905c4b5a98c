"""Evaluations (issue 14): marked indications with versions, evaluations, signatures, inspection status

Revision ID: 0006_evaluations
Revises: 0004_accounts
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_evaluations"
down_revision: str | None = "0004_accounts"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "evaluations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("study_id", sa.Integer(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("method", sa.String(length=8), nullable=False),
        sa.Column("disposition", sa.String(length=8), nullable=False),
        sa.Column("standard", sa.Text(), nullable=False),
        sa.Column("standard_meaning", sa.Text(), nullable=False),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("repair_id", sa.Text(), nullable=True),
        sa.Column("reinspection_of", sa.String(length=64), nullable=True),
        sa.Column("dispositions", sa.Text(), nullable=False),
        sa.Column("author", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["study_id"], ["studies.id"], name=op.f("fk_evaluations_study_id_studies")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_evaluations")),
        sa.UniqueConstraint("study_id", "attempt", name=op.f("uq_evaluations_study_id")),
    )
    with op.batch_alter_table("evaluations", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_evaluations_study_id"), ["study_id"], unique=False)

    op.create_table(
        "inspection_states",
        sa.Column("study_id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("export_sop_instance_uid", sa.String(length=64), nullable=True),
        sa.Column("report_sop_instance_uid", sa.String(length=64), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["study_id"], ["studies.id"], name=op.f("fk_inspection_states_study_id_studies")),
        sa.PrimaryKeyConstraint("study_id", name=op.f("pk_inspection_states")),
    )
    with op.batch_alter_table("inspection_states", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_inspection_states_status"), ["status"], unique=False)

    op.create_table(
        "signatures",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("study_id", sa.Integer(), nullable=False),
        sa.Column("evaluation_id", sa.Integer(), nullable=False),
        sa.Column("meaning", sa.String(length=16), nullable=False),
        sa.Column("signer", sa.Text(), nullable=False),
        sa.Column("printed_name", sa.Text(), nullable=False),
        sa.Column("role", sa.Text(), nullable=True),
        sa.Column("signed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("qualification", sa.Text(), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("content_sha256", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["evaluation_id"], ["evaluations.id"], name=op.f("fk_signatures_evaluation_id_evaluations")
        ),
        sa.ForeignKeyConstraint(["study_id"], ["studies.id"], name=op.f("fk_signatures_study_id_studies")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_signatures")),
    )
    with op.batch_alter_table("signatures", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_signatures_evaluation_id"), ["evaluation_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_signatures_study_id"), ["study_id"], unique=False)

    op.create_table(
        "marked_indications",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("study_id", sa.Integer(), nullable=False),
        sa.Column("instance_id", sa.Integer(), nullable=False),
        sa.Column("sop_instance_uid", sa.String(length=64), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_by", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["instance_id"], ["instances.id"], name=op.f("fk_marked_indications_instance_id_instances")
        ),
        sa.ForeignKeyConstraint(["study_id"], ["studies.id"], name=op.f("fk_marked_indications_study_id_studies")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_marked_indications")),
        sa.UniqueConstraint("study_id", "number", name=op.f("uq_marked_indications_study_id")),
    )
    with op.batch_alter_table("marked_indications", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_marked_indications_instance_id"), ["instance_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_marked_indications_sop_instance_uid"), ["sop_instance_uid"], unique=False)
        batch_op.create_index(batch_op.f("ix_marked_indications_study_id"), ["study_id"], unique=False)

    op.create_table(
        "marked_indication_versions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("indication_id", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("instance_version", sa.Integer(), nullable=False),
        sa.Column("frame_number", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("geometry", sa.Text(), nullable=False),
        sa.Column("indication_type", sa.String(length=16), nullable=False),
        sa.Column("label", sa.Text(), nullable=True),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("length", sa.Float(), nullable=True),
        sa.Column("width", sa.Float(), nullable=True),
        sa.Column("area", sa.Float(), nullable=True),
        sa.Column("unit", sa.String(length=8), nullable=False),
        sa.Column("spacing_attribute", sa.Text(), nullable=True),
        sa.Column("spacing_row_mm", sa.Float(), nullable=True),
        sa.Column("spacing_column_mm", sa.Float(), nullable=True),
        sa.Column("withdrawn", sa.Boolean(), nullable=False),
        sa.Column("author", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["indication_id"],
            ["marked_indications.id"],
            name=op.f("fk_marked_indication_versions_indication_id_marked_indications"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_marked_indication_versions")),
        sa.UniqueConstraint("indication_id", "version", name=op.f("uq_marked_indication_versions_indication_id")),
    )
    with op.batch_alter_table("marked_indication_versions", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_marked_indication_versions_indication_id"), ["indication_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("marked_indication_versions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_marked_indication_versions_indication_id"))

    op.drop_table("marked_indication_versions")
    with op.batch_alter_table("marked_indications", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_marked_indications_study_id"))
        batch_op.drop_index(batch_op.f("ix_marked_indications_sop_instance_uid"))
        batch_op.drop_index(batch_op.f("ix_marked_indications_instance_id"))

    op.drop_table("marked_indications")
    with op.batch_alter_table("signatures", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_signatures_study_id"))
        batch_op.drop_index(batch_op.f("ix_signatures_evaluation_id"))

    op.drop_table("signatures")
    with op.batch_alter_table("inspection_states", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_inspection_states_status"))

    op.drop_table("inspection_states")
    with op.batch_alter_table("evaluations", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_evaluations_study_id"))

    op.drop_table("evaluations")
