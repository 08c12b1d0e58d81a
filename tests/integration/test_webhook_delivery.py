"""The webhook deliverer killed with SIGKILL mid-delivery and started again loses nothing: every queued event
reaches the receiver (the one in flight again, with the same webhook-id, so the receiver can tell), the
events of one case in their order, and every delivery ends delivered. On PostgreSQL, the deliverer in its own
process, the receiver a real HTTP server in this one."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from standardwebhooks import Webhook

from contracts.agencies import Agency
from contracts.vocabulary import ReferralStatus
from huhang.personal import new_data_key
from huhang.settings import Settings
from services.notifications.main import build
from services.notifications.webhooks_store import DELIVERED, INFLIGHT
from tests.conftest import RUN_PREFIX
from tests.support.processes import eventually, huhang_env, stop_process
from tests.support.webhook_receiver import Receiver, Reply, webhook_receiver
from tests.unit.test_webhooks_model import referral_requested, status_changed

pytestmark = [pytest.mark.integration, pytest.mark.slow]

DELIVERER = """
import signal, threading
from huhang.settings import Settings
from services.notifications.main import build
service = build(Settings())
stop = threading.Event()
signal.signal(signal.SIGTERM, lambda *_: stop.set())
print("delivering", flush=True)
service.deliverer().run(stop)
"""


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with webhook_receiver() as r:
        yield r


def _deliverer(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen([sys.executable, "-c", DELIVERER], env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)


def test_no_delivery_is_lost_when_the_deliverer_is_killed_mid_delivery(postgres_url, receiver, tmp_path):
    settings_values = {
        "storage": "postgres", "database_url": postgres_url, "schema_prefix": f"{RUN_PREFIX}{uuid.uuid4().hex[:6]}_",
        "data_key": new_data_key(), "webhook_lease_s": "3", "webhook_timeout_s": "30",
        "webhook_poll_interval_s": "0.05", "webhook_backoff_base_s": "0.2",
    }
    settings = Settings(**settings_values)
    service = build(settings)
    row, secret = service.webhooks.create(Agency.police, receiver.url("/police"), [], None, None,
                                          service.webhooks.clock())
    case = uuid.uuid4()
    ordered = [referral_requested(case, Agency.police),
               *(status_changed(case, s) for s in (ReferralStatus.received, ReferralStatus.accepted))]
    others = [referral_requested(uuid.uuid4(), Agency.police) for _ in range(8)]
    # the case's first event is held by the receiver (no answer for a minute): the deliverer dies waiting for it
    receiver.script("/police", Reply(204, delay_s=60), webhook_id=str(ordered[0].id))
    service.webhooks.handle([*ordered, *others])
    env = huhang_env(**{k: str(v) for k, v in settings_values.items()})
    log = tmp_path / "deliverer.log"

    first = _deliverer(env, log)
    try:
        receiver.wait_for("/police", 1 + len(others), timeout_s=60)

        def only_the_stalled_one_in_flight() -> bool:
            statuses = {d["event_id"]: d["status"] for d in service.webhooks.deliveries(row["id"])}
            return statuses[str(ordered[0].id)] == INFLIGHT and all(
                statuses[str(e.id)] == DELIVERED for e in others)

        eventually(only_the_stalled_one_in_flight, timeout_s=30)
        os.killpg(first.pid, signal.SIGKILL)  # mid-delivery: the request sent, no answer recorded
        first.wait(10)
    finally:
        stop_process(first)

    second = _deliverer(env, log)
    try:
        eventually(lambda: {d["status"] for d in service.webhooks.deliveries(row["id"])} == {DELIVERED},
                   timeout_s=60)
    finally:
        stop_process(second)
    service.application.close()

    got = receiver.at("/police")
    ids = [r.headers["webhook-id"] for r in got]
    assert set(ids) == {str(e.id) for e in [*ordered, *others]}  # nothing lost
    assert ids.count(str(ordered[0].id)) == 2  # the one in flight was sent again: same id, the receiver dedupes
    firsts = list(dict.fromkeys(i for i in ids if i in {str(e.id) for e in ordered}))
    assert firsts == [str(e.id) for e in ordered]  # the case's order kept across the crash
    for r in got:
        Webhook(secret).verify(r.body, r.headers)
