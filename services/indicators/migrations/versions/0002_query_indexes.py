"""Indexes for the indicator queries counted in SQL (issue 8)

A unit's children and risks (township, village, valid_from); a child's last contact of a kind answered from the
index alone (child_id, kind, on_date, recorded_at: it replaces ``ix_ind_contact_child``, its prefix); the county's
contacts of a window (kind, on_date, ...); an agency's referral states; dropouts by time.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29 20:40:00
"""

from __future__ import annotations

from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None

NEW = (
    ("ind_child", "ix_ind_child_place", ["township", "village", "valid_from"]),
    ("ind_contact", "ix_ind_contact_child_day", ["child_id", "kind", "on_date", "recorded_at"]),
    ("ind_contact", "ix_ind_contact_window", ["kind", "on_date", "child_id", "recorded_at"]),
    ("ind_risk", "ix_ind_risk_place", ["township", "village", "valid_from"]),
    ("ind_referral_state", "ix_ind_referral_state_owner", ["owner_agency", "valid_from"]),
    ("ind_dropout", "ix_ind_dropout_time", ["valid_from"]),
)


def upgrade() -> None:
    for table, name, columns in NEW:
        op.create_index(name, table, columns, unique=False)
    op.drop_index("ix_ind_contact_child", table_name="ind_contact")


def downgrade() -> None:
    op.create_index("ix_ind_contact_child", "ind_contact", ["child_id", "kind", "on_date"], unique=False)
    for table, name, _columns in reversed(NEW):
        op.drop_index(name, table_name=table)
