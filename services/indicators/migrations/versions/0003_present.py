"""The present: each child's present row, each referral's present status and owner, the inbox's time index

``ind_child_present`` (one row per child: the open child row's columns, the latest day of each kind of contact,
the latest school-dropout spell) and ``ind_referral.status``/``owner_agency`` let the figures as of the present
(nothing recorded after) be read in one scan of a table rather than by joining temporal rows; ``ix_ind_inbox_time``
answers the latest recorded time that decides it. Both are filled here from the tables already kept, by the rules
of ``services/indicators/projection.py`` (a later rebuild replays the inbox into them the same way).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29 23:40:00
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None

BATCH = 5000

present = sa.table(
    "ind_child_present",
    *(sa.column(name) for name in (
        "child_id", "registered", "township", "village", "categories", "parents_away", "frequent", "last_contact",
        "last_home_visit", "last_parent", "school_out", "school_township", "school_village")),
)
child = sa.table("ind_child", *(sa.column(name) for name in (
    "child_id", "township", "village", "categories", "parents_away", "frequent", "valid_to")))
contact = sa.table("ind_contact", *(sa.column(name) for name in ("child_id", "kind", "on_date")))
dropout = sa.table("ind_dropout", *(sa.column(name) for name in (
    "id", "child_id", "township", "village", "valid_from", "valid_to")))


def upgrade() -> None:
    op.create_index("ix_ind_inbox_time", "ind_inbox", ["time"], unique=False)
    with op.batch_alter_table("ind_referral", schema=None) as batch_op:
        batch_op.add_column(sa.Column("status", sa.String(length=20), nullable=True))
        batch_op.add_column(sa.Column("owner_agency", sa.String(length=40), nullable=True))
    op.execute(  # the open state's status and owner
        "UPDATE ind_referral SET"
        " status = (SELECT s.status FROM ind_referral_state s"
        " WHERE s.referral_id = ind_referral.referral_id AND s.valid_to IS NULL),"
        " owner_agency = (SELECT s.owner_agency FROM ind_referral_state s"
        " WHERE s.referral_id = ind_referral.referral_id AND s.valid_to IS NULL)"
    )
    op.create_table(
        "ind_child_present",
        sa.Column("child_id", sa.String(length=36), nullable=False),
        sa.Column("registered", sa.Boolean(), nullable=False),
        sa.Column("township", sa.String(length=100), nullable=True),
        sa.Column("village", sa.String(length=100), nullable=True),
        sa.Column("categories", sa.String(length=400), nullable=True),
        sa.Column("parents_away", sa.Boolean(), nullable=True),
        sa.Column("frequent", sa.Boolean(), nullable=True),
        sa.Column("last_contact", sa.Date(), nullable=True),
        sa.Column("last_home_visit", sa.Date(), nullable=True),
        sa.Column("last_parent", sa.Date(), nullable=True),
        sa.Column("school_out", sa.Boolean(), nullable=True),
        sa.Column("school_township", sa.String(length=100), nullable=True),
        sa.Column("school_village", sa.String(length=100), nullable=True),
        sa.PrimaryKeyConstraint("child_id"),
    )
    _fill_present(op.get_bind())


def _fill_present(conn: Any) -> None:
    """Each child's present row from the temporal tables' open rows, latest contacts and latest spells."""
    rows: dict[str, dict[str, Any]] = {}

    def row(child_id: str) -> dict[str, Any]:
        if child_id not in rows:
            rows[child_id] = {c.name: None for c in present.c} | {"child_id": child_id, "registered": False}
        return rows[child_id]

    for r in conn.execute(sa.select(child).where(child.c.valid_to.is_(None))):
        row(r.child_id).update(registered=True, township=r.township, village=r.village, categories=r.categories,
                               parents_away=r.parents_away, frequent=r.frequent)
    for r in conn.execute(sa.select(child.c.child_id).distinct()):
        row(r.child_id)
    latest = sa.func.max(contact.c.on_date)
    for r in conn.execute(sa.select(contact.c.child_id, contact.c.kind, latest).group_by(
            contact.c.child_id, contact.c.kind)):
        held = row(r[0])
        names = {"contact": ("last_contact",), "home_visit": ("last_contact", "last_home_visit"),
                 "parent": ("last_parent",)}.get(r[1], ())
        for name in names:
            if held[name] is None or held[name] < r[2]:
                held[name] = r[2]
    for r in conn.execute(sa.select(dropout).order_by(dropout.c.valid_from, dropout.c.id)):  # the latest wins
        row(r.child_id).update(school_out=r.valid_to is None, school_township=r.township, school_village=r.village)
    values = list(rows.values())
    for start in range(0, len(values), BATCH):
        conn.execute(present.insert(), values[start:start + BATCH])


def downgrade() -> None:
    op.drop_table("ind_child_present")
    with op.batch_alter_table("ind_referral", schema=None) as batch_op:
        batch_op.drop_column("owner_agency")
        batch_op.drop_column("status")
    op.drop_index("ix_ind_inbox_time", table_name="ind_inbox")
