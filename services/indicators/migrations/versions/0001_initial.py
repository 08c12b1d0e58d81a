"""The indicators tables: inbox log, temporal read models, colours

Revision ID: 0001
Revises: (none)
Create Date: 2026-11-29 19:37:15.978433
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('ind_agreement',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('agreement_id', sa.String(length=36), nullable=False),
    sa.Column('child_id', sa.String(length=36), nullable=False),
    sa.Column('expires_on', sa.Date(), nullable=True),
    sa.Column('valid_from', sa.DateTime(timezone=True), nullable=False),
    sa.Column('valid_to', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('ind_agreement', schema=None) as batch_op:
        batch_op.create_index('ix_ind_agreement_child', ['child_id', 'valid_from'], unique=False)

    op.create_table('ind_child',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('child_id', sa.String(length=36), nullable=False),
    sa.Column('township', sa.String(length=100), nullable=False),
    sa.Column('village', sa.String(length=100), nullable=False),
    sa.Column('categories', sa.String(length=400), nullable=False),
    sa.Column('parents_away', sa.Boolean(), nullable=False),
    sa.Column('frequent', sa.Boolean(), nullable=False),
    sa.Column('valid_from', sa.DateTime(timezone=True), nullable=False),
    sa.Column('valid_to', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('ind_child', schema=None) as batch_op:
        batch_op.create_index('ix_ind_child_open', ['child_id', 'valid_to'], unique=False)
        batch_op.create_index('ix_ind_child_time', ['valid_from', 'valid_to'], unique=False)

    op.create_table('ind_colour',
    sa.Column('indicator', sa.String(length=60), nullable=False),
    sa.Column('unit_kind', sa.String(length=10), nullable=False),
    sa.Column('unit', sa.String(length=210), nullable=False),
    sa.Column('colour', sa.String(length=10), nullable=True),
    sa.Column('value', sa.Float(), nullable=True),
    sa.Column('changed_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('indicator', 'unit_kind', 'unit')
    )
    op.create_table('ind_colour_change',
    sa.Column('seq', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('change_id', sa.String(length=36), nullable=False),
    sa.Column('indicator', sa.String(length=60), nullable=False),
    sa.Column('unit_kind', sa.String(length=10), nullable=False),
    sa.Column('unit', sa.String(length=210), nullable=False),
    sa.Column('previous', sa.String(length=10), nullable=True),
    sa.Column('colour', sa.String(length=10), nullable=True),
    sa.Column('value', sa.Float(), nullable=True),
    sa.Column('changed_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('seq'),
    sa.UniqueConstraint('change_id')
    )
    with op.batch_alter_table('ind_colour_change', schema=None) as batch_op:
        batch_op.create_index('ix_ind_colour_change_time', ['changed_at'], unique=False)

    op.create_table('ind_contact',
    sa.Column('contact_id', sa.String(length=36), nullable=False),
    sa.Column('child_id', sa.String(length=36), nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('on_date', sa.Date(), nullable=False),
    sa.Column('recorded_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('contact_id')
    )
    with op.batch_alter_table('ind_contact', schema=None) as batch_op:
        batch_op.create_index('ix_ind_contact_child', ['child_id', 'kind', 'on_date'], unique=False)

    op.create_table('ind_director',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('director_id', sa.String(length=36), nullable=False),
    sa.Column('township', sa.String(length=100), nullable=False),
    sa.Column('village', sa.String(length=100), nullable=False),
    sa.Column('valid_from', sa.DateTime(timezone=True), nullable=False),
    sa.Column('valid_to', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('ind_director', schema=None) as batch_op:
        batch_op.create_index('ix_ind_director_open', ['director_id', 'valid_to'], unique=False)

    op.create_table('ind_dropout',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('child_id', sa.String(length=36), nullable=False),
    sa.Column('township', sa.String(length=100), nullable=False),
    sa.Column('village', sa.String(length=100), nullable=False),
    sa.Column('valid_from', sa.DateTime(timezone=True), nullable=False),
    sa.Column('valid_to', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('ind_dropout', schema=None) as batch_op:
        batch_op.create_index('ix_ind_dropout_child', ['child_id', 'valid_to'], unique=False)

    op.create_table('ind_inbox',
    sa.Column('seq', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('event_id', sa.String(length=36), nullable=False),
    sa.Column('type', sa.String(length=120), nullable=False),
    sa.Column('time', sa.DateTime(timezone=True), nullable=False),
    sa.Column('payload', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('seq'),
    sa.UniqueConstraint('event_id')
    )
    op.create_table('ind_intervention',
    sa.Column('intervention_id', sa.String(length=36), nullable=False),
    sa.Column('child_id', sa.String(length=36), nullable=False),
    sa.Column('kind', sa.String(length=60), nullable=False),
    sa.Column('agency', sa.String(length=40), nullable=False),
    sa.Column('township', sa.String(length=100), nullable=False),
    sa.Column('village', sa.String(length=100), nullable=False),
    sa.Column('recorded_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('intervention_id')
    )
    with op.batch_alter_table('ind_intervention', schema=None) as batch_op:
        batch_op.create_index('ix_ind_intervention_time', ['recorded_at'], unique=False)

    op.create_table('ind_referral',
    sa.Column('referral_id', sa.String(length=36), nullable=False),
    sa.Column('referral_type', sa.String(length=80), nullable=False),
    sa.Column('priority', sa.String(length=20), nullable=False),
    sa.Column('township', sa.String(length=100), nullable=False),
    sa.Column('village', sa.String(length=100), nullable=False),
    sa.Column('requested_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('due_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('complete_by', sa.DateTime(timezone=True), nullable=True),
    sa.Column('accepted_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('completed_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('referral_id')
    )
    op.create_table('ind_referral_state',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('referral_id', sa.String(length=36), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('owner_agency', sa.String(length=40), nullable=False),
    sa.Column('valid_from', sa.DateTime(timezone=True), nullable=False),
    sa.Column('valid_to', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('ind_referral_state', schema=None) as batch_op:
        batch_op.create_index('ix_ind_referral_state_open', ['referral_id', 'valid_to'], unique=False)
        batch_op.create_index('ix_ind_referral_state_time', ['valid_from'], unique=False)

    op.create_table('ind_risk',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('child_id', sa.String(length=36), nullable=False),
    sa.Column('colour', sa.String(length=10), nullable=False),
    sa.Column('previous', sa.String(length=10), nullable=True),
    sa.Column('township', sa.String(length=100), nullable=False),
    sa.Column('village', sa.String(length=100), nullable=False),
    sa.Column('valid_from', sa.DateTime(timezone=True), nullable=False),
    sa.Column('valid_to', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('ind_risk', schema=None) as batch_op:
        batch_op.create_index('ix_ind_risk_open', ['child_id', 'valid_to'], unique=False)
        batch_op.create_index('ix_ind_risk_time', ['valid_from'], unique=False)

    op.create_table('ind_training',
    sa.Column('training_id', sa.String(length=36), nullable=False),
    sa.Column('director_id', sa.String(length=36), nullable=False),
    sa.Column('trained_on', sa.Date(), nullable=False),
    sa.Column('recorded_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('training_id')
    )
    with op.batch_alter_table('ind_training', schema=None) as batch_op:
        batch_op.create_index('ix_ind_training_director', ['director_id', 'trained_on'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('ind_training', schema=None) as batch_op:
        batch_op.drop_index('ix_ind_training_director')

    op.drop_table('ind_training')
    with op.batch_alter_table('ind_risk', schema=None) as batch_op:
        batch_op.drop_index('ix_ind_risk_time')
        batch_op.drop_index('ix_ind_risk_open')

    op.drop_table('ind_risk')
    with op.batch_alter_table('ind_referral_state', schema=None) as batch_op:
        batch_op.drop_index('ix_ind_referral_state_time')
        batch_op.drop_index('ix_ind_referral_state_open')

    op.drop_table('ind_referral_state')
    op.drop_table('ind_referral')
    with op.batch_alter_table('ind_intervention', schema=None) as batch_op:
        batch_op.drop_index('ix_ind_intervention_time')

    op.drop_table('ind_intervention')
    op.drop_table('ind_inbox')
    with op.batch_alter_table('ind_dropout', schema=None) as batch_op:
        batch_op.drop_index('ix_ind_dropout_child')

    op.drop_table('ind_dropout')
    with op.batch_alter_table('ind_director', schema=None) as batch_op:
        batch_op.drop_index('ix_ind_director_open')

    op.drop_table('ind_director')
    with op.batch_alter_table('ind_contact', schema=None) as batch_op:
        batch_op.drop_index('ix_ind_contact_child')

    op.drop_table('ind_contact')
    with op.batch_alter_table('ind_colour_change', schema=None) as batch_op:
        batch_op.drop_index('ix_ind_colour_change_time')

    op.drop_table('ind_colour_change')
    op.drop_table('ind_colour')
    with op.batch_alter_table('ind_child', schema=None) as batch_op:
        batch_op.drop_index('ix_ind_child_time')
        batch_op.drop_index('ix_ind_child_open')

    op.drop_table('ind_child')
    with op.batch_alter_table('ind_agreement', schema=None) as batch_op:
        batch_op.drop_index('ix_ind_agreement_child')

    op.drop_table('ind_agreement')
