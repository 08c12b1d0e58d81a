"""The routing rules in force: reloaded when their file changes, without a restart.

A file that fails validation is refused (logged with the reason) and the rules in force stay; each referral
records the rules version that opened it.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import yaml
from pydantic import ValidationError

from contracts.routing import RoutingRules, load_rules

logger = logging.getLogger(__name__)


class RulesProvider:
    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._mtime = self._stat()
        self._rules = load_rules(path)

    def _stat(self) -> float | None:
        if self.path is None:
            return None
        try:
            return self.path.stat().st_mtime_ns / 1e9
        except OSError:
            return None

    def current(self) -> RoutingRules:
        """The rules in force, reloaded first if the file changed since the last look."""
        mtime = self._stat()
        if mtime is None or mtime == self._mtime:
            return self._rules
        with self._lock:
            if mtime != self._mtime:
                self._mtime = mtime
                self._reload()
        return self._rules

    def _reload(self) -> None:
        try:
            rules = load_rules(self.path)
        except (ValidationError, ValueError, OSError, yaml.YAMLError) as exc:
            logger.error("routing rules in %s refused (%s); version %s stays in force",
                         self.path, str(exc)[:500], self._rules.version)
            return
        if rules.version == self._rules.version:
            logger.warning("routing rules changed but kept version %s: give each change a new version", rules.version)
        logger.info("routing rules version %s in force (was %s)", rules.version, self._rules.version)
        self._rules = rules
