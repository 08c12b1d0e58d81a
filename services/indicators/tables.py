"""The indicators service's tables (SQLAlchemy Core): the inbox log and the temporal read models.

``ind_inbox`` keeps every integration event received, append-only, unique on the event id: it is the log a
rebuild replays. The read models are temporal: a row holds from ``valid_from`` to ``valid_to`` (``NULL``: still
holds), both the event's recorded time (its CloudEvents ``time``), so that "as of" is a ``WHERE`` on those columns.
Facts that do not end (a visit, a training, an intervention) carry ``recorded_at`` instead. Created by the alembic
environment in ``services/indicators/migrations/`` (``huhang indicators migrate``), not by ``create_all`` at run
time; tests may ``create_all`` an in-memory engine.

``MODELS`` names the read models a rebuild can target (``huhang indicators rebuild --model NAME``), each with the
tables it owns.
"""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

metadata = MetaData()

inbox = Table(
    "ind_inbox", metadata,
    Column("seq", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("event_id", String(36), nullable=False, unique=True),
    Column("type", String(120), nullable=False),
    Column("time", DateTime(timezone=True), nullable=False),
    Column("payload", Text, nullable=False),
    Index("ix_ind_inbox_time", "time"),  # 0003: the latest recorded time (whether "as of" is the present)
)

children = Table(
    "ind_child", metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("child_id", String(36), nullable=False),
    Column("township", String(100), nullable=False),
    Column("village", String(100), nullable=False),
    Column("categories", String(400), nullable=False),  # ",a,b," so that LIKE '%,a,%' finds one
    Column("parents_away", Boolean, nullable=False),
    Column("frequent", Boolean, nullable=False),
    Column("valid_from", DateTime(timezone=True), nullable=False),
    Column("valid_to", DateTime(timezone=True)),
    Index("ix_ind_child_open", "child_id", "valid_to"),
    Index("ix_ind_child_time", "valid_from", "valid_to"),
    Index("ix_ind_child_place", "township", "village", "valid_from"),  # 0002: a unit's children
)

contacts = Table(
    "ind_contact", metadata,
    Column("contact_id", String(36), primary_key=True),
    Column("child_id", String(36), nullable=False),
    Column("kind", String(20), nullable=False),  # contact | home_visit | parent
    Column("on_date", Date, nullable=False),
    Column("recorded_at", DateTime(timezone=True), nullable=False),
    # 0002: a child's last contact of a kind, answered from the index alone; the county's contacts of a window
    Index("ix_ind_contact_child_day", "child_id", "kind", "on_date", "recorded_at"),
    Index("ix_ind_contact_window", "kind", "on_date", "child_id", "recorded_at"),
)

agreements = Table(
    "ind_agreement", metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("agreement_id", String(36), nullable=False),
    Column("child_id", String(36), nullable=False),
    Column("expires_on", Date),
    Column("valid_from", DateTime(timezone=True), nullable=False),
    Column("valid_to", DateTime(timezone=True)),
    Index("ix_ind_agreement_child", "child_id", "valid_from"),
)

directors = Table(
    "ind_director", metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("director_id", String(36), nullable=False),
    Column("township", String(100), nullable=False),
    Column("village", String(100), nullable=False),
    Column("valid_from", DateTime(timezone=True), nullable=False),
    Column("valid_to", DateTime(timezone=True)),
    Index("ix_ind_director_open", "director_id", "valid_to"),
)

trainings = Table(
    "ind_training", metadata,
    Column("training_id", String(36), primary_key=True),
    Column("director_id", String(36), nullable=False),
    Column("trained_on", Date, nullable=False),
    Column("recorded_at", DateTime(timezone=True), nullable=False),
    Index("ix_ind_training_director", "director_id", "trained_on"),
)

risks = Table(
    "ind_risk", metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("child_id", String(36), nullable=False),
    Column("colour", String(10), nullable=False),
    Column("previous", String(10)),
    Column("township", String(100), nullable=False),
    Column("village", String(100), nullable=False),
    Column("valid_from", DateTime(timezone=True), nullable=False),
    Column("valid_to", DateTime(timezone=True)),
    Index("ix_ind_risk_open", "child_id", "valid_to"),
    Index("ix_ind_risk_time", "valid_from"),
    Index("ix_ind_risk_place", "township", "village", "valid_from"),  # 0002
)

referrals = Table(
    "ind_referral", metadata,
    Column("referral_id", String(36), primary_key=True),
    Column("referral_type", String(80), nullable=False),
    Column("priority", String(20), nullable=False),
    Column("township", String(100), nullable=False),
    Column("village", String(100), nullable=False),
    Column("requested_at", DateTime(timezone=True), nullable=False),
    Column("due_at", DateTime(timezone=True), nullable=False),
    Column("complete_by", DateTime(timezone=True)),
    Column("accepted_at", DateTime(timezone=True)),
    Column("completed_at", DateTime(timezone=True)),
    # 0003: the referral's present status and owner (those of its open ``ind_referral_state`` row), so that the
    # present's open referrals are read from this table alone
    Column("status", String(20)),
    Column("owner_agency", String(40)),
)

referral_states = Table(
    "ind_referral_state", metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("referral_id", String(36), nullable=False),
    Column("status", String(20), nullable=False),
    Column("owner_agency", String(40), nullable=False),
    Column("valid_from", DateTime(timezone=True), nullable=False),
    Column("valid_to", DateTime(timezone=True)),
    Index("ix_ind_referral_state_open", "referral_id", "valid_to"),
    Index("ix_ind_referral_state_time", "valid_from"),
    Index("ix_ind_referral_state_owner", "owner_agency", "valid_from"),  # 0002: an agency's referrals
)

dropouts = Table(
    "ind_dropout", metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("child_id", String(36), nullable=False),
    Column("township", String(100), nullable=False),
    Column("village", String(100), nullable=False),
    Column("valid_from", DateTime(timezone=True), nullable=False),  # reported out of school
    Column("valid_to", DateTime(timezone=True)),  # reported back at school
    Index("ix_ind_dropout_child", "child_id", "valid_to"),
    Index("ix_ind_dropout_time", "valid_from"),  # 0002
)

interventions = Table(
    "ind_intervention", metadata,
    Column("intervention_id", String(36), primary_key=True),
    Column("child_id", String(36), nullable=False),
    Column("kind", String(60), nullable=False),
    Column("agency", String(40), nullable=False),
    Column("township", String(100), nullable=False),
    Column("village", String(100), nullable=False),
    Column("recorded_at", DateTime(timezone=True), nullable=False),
    Index("ix_ind_intervention_time", "recorded_at"),
)

child_present = Table(
    # 0003: each child's present, one row per child id seen: what the open ``ind_child`` row says (``registered``:
    # there is one), the latest day of each kind of contact, and the child's latest school-dropout spell
    # (``school_out``: true while out of school, false once back, NULL never reported). The figures "as of" an
    # instant at or after the latest recorded event are those of the temporal tables at that instant, read from
    # this table in one scan (``queries.py``); a rebuild replays the same events into it.
    "ind_child_present", metadata,
    Column("child_id", String(36), primary_key=True),
    Column("registered", Boolean, nullable=False),
    Column("township", String(100)),
    Column("village", String(100)),
    Column("categories", String(400)),
    Column("parents_away", Boolean),
    Column("frequent", Boolean),
    Column("last_contact", Date),  # a contact or a home visit
    Column("last_home_visit", Date),
    Column("last_parent", Date),
    Column("school_out", Boolean),
    Column("school_township", String(100)),
    Column("school_village", String(100)),
    # no index on the place: a county's figures scan the table (SQLite read it through such an index, row by
    # row, at twice the time of a scan), a township's too (100,000 rows: milliseconds)
)

colours = Table(
    "ind_colour", metadata,
    Column("indicator", String(60), primary_key=True),
    Column("unit_kind", String(10), primary_key=True),
    Column("unit", String(210), primary_key=True),
    Column("colour", String(10)),
    Column("value", Float),
    Column("changed_at", DateTime(timezone=True), nullable=False),
)

colour_changes = Table(
    "ind_colour_change", metadata,
    Column("seq", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("change_id", String(36), nullable=False, unique=True),
    Column("indicator", String(60), nullable=False),
    Column("unit_kind", String(10), nullable=False),
    Column("unit", String(210), nullable=False),
    Column("previous", String(10)),
    Column("colour", String(10)),
    Column("value", Float),
    Column("changed_at", DateTime(timezone=True), nullable=False),
    Index("ix_ind_colour_change_time", "changed_at"),
)

MODELS: Mapping[str, tuple[Table, ...]] = {
    "children": (children,),
    "contacts": (contacts,),
    "agreements": (agreements,),
    "directors": (directors, trainings),
    "risks": (risks,),
    "referrals": (referrals, referral_states),
    "dropouts": (dropouts,),
    "interventions": (interventions,),
    "present": (child_present,),
}
"""The read models a rebuild replays the inbox into; the colour tables are state of their own, not rebuilt."""
