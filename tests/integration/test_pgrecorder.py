"""The PostgreSQL recorder the services run on (huhang/pgrecorder.py): eventsourcing's, its aggregate reads composed
once per shape. Every shape of read answers exactly what eventsourcing's own ``select_events`` answers."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from eventsourcing.postgres import PostgresApplicationRecorder

from contracts.vocabulary import ReferralStatus
from huhang.pgrecorder import PostgresRecorder
from tests.conftest import postgres_settings
from tests.support.referrals import referral_service
from tests.unit.test_referral import opened, walk_legal_path

pytestmark = pytest.mark.integration


def test_every_shape_of_read_answers_as_eventsourcings_own(postgres_url: str, tmp_path: Path) -> None:
    settings = postgres_settings(postgres_url, data_dir=tmp_path / "data")
    with referral_service(settings) as service:
        app = service.application
        recorder = app.recorder
        assert isinstance(recorder, PostgresRecorder)
        referral_id = opened(app)
        walk_legal_path(app, referral_id)
        assert app.repository.get(referral_id).status == ReferralStatus.completed
        shapes = itertools.product((None, 1), (None, 4), (False, True), (None, 2))
        for gt, lte, desc, limit in shapes:
            ours = recorder.select_events(referral_id, gt=gt, lte=lte, desc=desc, limit=limit)
            theirs = PostgresApplicationRecorder.select_events(
                recorder, referral_id, gt=gt, lte=lte, desc=desc, limit=limit
            )
            assert ours == list(theirs), (gt, lte, desc, limit)
            assert ours, (gt, lte, desc, limit)
        assert len(recorder._select_statements) == 16  # composed once per shape
        recorder.select_events(referral_id)
        assert len(recorder._select_statements) == 16
