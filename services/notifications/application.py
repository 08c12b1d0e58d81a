"""Notifications: its facts are other services' events, so it keeps no aggregates of its own.

Its event store exists all the same: every service has one (the composition root follows it as the service's
outbox), and a fact that notifications comes to own, such as a notice being read, would be recorded there.
"""

from __future__ import annotations

from huhang.eventstore import ServiceApplication


class NotificationsApplication(ServiceApplication):
    name = "notifications"
