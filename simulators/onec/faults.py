"""Faults on demand: what a 1C publication behind IIS/Apache/nginx does on a bad day.

`FaultConfig` is set at construction or at run time via `POST /_admin/faults` (merged into the
current one; `DELETE /_admin/faults` restores the defaults). Random faults use a seeded RNG, so a
test run is reproducible. `only_sets` limits the random faults to some entity sets.
"""

from __future__ import annotations

import random
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from simulators.serving import hide_drop_tracebacks


class BrokenJsonRule(BaseModel):
    """Answer 200 with truncated JSON for `entity_set` at `$skip` = `skip` (None: any page).

    `times=None` keeps the page broken for good (a page that stays broken); otherwise it heals
    after that many broken answers.
    """

    model_config = ConfigDict(extra="forbid")

    entity_set: str
    skip: int | None = None
    times: int | None = None


class FaultConfig(BaseModel):
    """Every fault switch of the simulator; all off by default."""

    model_config = ConfigDict(extra="forbid")

    seed: int = 0
    error_rate: float = Field(0.0, ge=0, le=1)  # random 5xx before processing (nothing committed)
    error_statuses: list[int] = Field(default_factory=lambda: [500, 502, 503])
    error_body: Literal["mixed", "html", "odata"] = "mixed"  # mixed: 500 → odata -1, 502/503 → HTML
    drop_rate: float = Field(0.0, ge=0, le=1)  # close the connection without any response
    latency_seconds: float = Field(0.0, ge=0)  # added to every OData request
    slow_rate: float = Field(0.0, ge=0, le=1)  # share of requests delayed by slow_seconds more
    slow_seconds: float = Field(5.0, ge=0)
    broken_json: list[BrokenJsonRule] = Field(default_factory=list)
    html_auth_200: bool = False  # every OData request answers an HTML login page with 200
    odata_disabled: bool = False  # standardOdata off in default.vrd: HTML 404 everywhere
    lose_create_response_rate: float = Field(0.0, ge=0, le=1)  # commit the POST, then drop the connection
    post_fails: bool = False  # posting fails with 500 / -1
    post_fail_message: str = "Недостаточно свободного остатка товара на складе «Основной склад»"
    create_fails: bool = False  # filling handler rejects every new document (500 / -1)
    only_sets: list[str] | None = None  # random faults only for these entity sets


hide_drop_tracebacks()


class FaultState:
    """The active configuration plus its RNG and the counters of healing broken pages."""

    def __init__(self, config: FaultConfig | None = None) -> None:
        self.set(config or FaultConfig())

    def set(self, config: FaultConfig) -> None:
        self.config = config
        self.rng = random.Random(config.seed)
        self._broken_left = [rule.times for rule in config.broken_json]

    def merge(self, changes: dict[str, Any]) -> FaultConfig:
        merged = FaultConfig.model_validate({**self.config.model_dump(), **changes})
        self.set(merged)
        return merged

    def applies(self, entity_set: str | None) -> bool:
        only = self.config.only_sets
        return only is None or (entity_set is not None and entity_set in only)

    def roll(self, rate: float) -> bool:
        return rate > 0 and self.rng.random() < rate

    def broken(self, entity_set: str | None, skip: int | None) -> bool:
        """Whether this page must be answered with truncated JSON (consumes one `times`)."""
        for n, rule in enumerate(self.config.broken_json):
            if rule.entity_set != entity_set or (rule.skip is not None and rule.skip != (skip or 0)):
                continue
            left = self._broken_left[n]
            if left is None:
                return True
            if left > 0:
                self._broken_left[n] = left - 1
                return True
        return False
