"""Glossary: concepts (the approved state), their versions, and change proposals.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from tocsin.backend import JSONDocument, UTCDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "glossary_concepts",
        sa.Column("id", sa.String(100), nullable=False),
        sa.Column("domain", sa.String(32), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("document", JSONDocument, nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("updated_by", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_glossary_concepts")),
    )
    op.create_index(op.f("ix_glossary_concepts_status"), "glossary_concepts", ["status"])
    op.create_table(
        "glossary_proposals",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("concept_id", sa.String(100), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("document", JSONDocument, nullable=False),
        sa.Column("base_version", sa.Integer(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("proposed_by_id", sa.Integer(), nullable=False),
        sa.Column("proposed_by", sa.String(64), nullable=False),
        sa.Column("proposed_at", UTCDateTime(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("decided_by_id", sa.Integer(), nullable=True),
        sa.Column("decided_by", sa.String(64), nullable=True),
        sa.Column("decided_at", UTCDateTime(), nullable=True),
        sa.Column("decision_note", sa.Text(), nullable=True),
        sa.Column("applied_version", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["proposed_by_id"], ["users.id"], name=op.f("fk_glossary_proposals_proposed_by_id_users")
        ),
        sa.ForeignKeyConstraint(
            ["decided_by_id"], ["users.id"], name=op.f("fk_glossary_proposals_decided_by_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_glossary_proposals")),
    )
    op.create_index(op.f("ix_glossary_proposals_concept_id"), "glossary_proposals", ["concept_id"])
    op.create_index(op.f("ix_glossary_proposals_status"), "glossary_proposals", ["status"])
    op.create_table(
        "glossary_versions",
        sa.Column("concept_id", sa.String(100), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("document", JSONDocument, nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("changed_at", UTCDateTime(), nullable=False),
        sa.Column("changed_by_id", sa.Integer(), nullable=True),
        sa.Column("changed_by", sa.String(64), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("proposal_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["concept_id"], ["glossary_concepts.id"], name=op.f("fk_glossary_versions_concept_id_glossary_concepts")
        ),
        sa.ForeignKeyConstraint(["changed_by_id"], ["users.id"], name=op.f("fk_glossary_versions_changed_by_id_users")),
        sa.ForeignKeyConstraint(
            ["proposal_id"],
            ["glossary_proposals.id"],
            name=op.f("fk_glossary_versions_proposal_id_glossary_proposals"),
        ),
        sa.PrimaryKeyConstraint("concept_id", "version", name=op.f("pk_glossary_versions")),
    )
    op.create_index(op.f("ix_glossary_versions_proposal_id"), "glossary_versions", ["proposal_id"])


def downgrade() -> None:
    for table in ("glossary_versions", "glossary_proposals", "glossary_concepts"):
        op.drop_table(table)
