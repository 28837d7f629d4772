"""Dagster resource for the 1C OData client: config in, `OneCClient` and profile out."""

from __future__ import annotations

from dagster import ConfigurableResource
from pydantic import Field

from resources.onec.client import OneCClient, RetryPolicy
from resources.onec.profile import MappingProfile, load_profile
from resources.settings import OneCSettings


class OneCResource(ConfigurableResource):
    """Connection and mapping settings of one 1C infobase; the password comes from the env."""

    api_url: str
    username: str
    password: str = Field(default="", description="HTTP Basic password; set through ONEC_PASSWORD")
    mapping: str = "ut11"
    price_type: str = "Розничная"
    warehouses: list[str] = Field(default_factory=list)
    page_size: int = 1000
    timeout_seconds: float = 30.0
    max_retries: int = 5
    backoff_base_seconds: float = 0.5
    backoff_max_seconds: float = 20.0
    server_timezone: str = "Asia/Almaty"

    @classmethod
    def from_settings(cls, s: OneCSettings, **overrides: object) -> OneCResource:
        values = dict(api_url=s.api_url, username=s.username, password=s.password.get_secret_value(),
                      mapping=s.mapping, price_type=s.price_type, warehouses=list(s.warehouses),
                      page_size=s.page_size, timeout_seconds=s.timeout_seconds, max_retries=s.max_retries,
                      server_timezone=s.server_timezone)
        values.update(overrides)
        return cls(**values)

    def client(self) -> OneCClient:
        return OneCClient(
            base_url=self.api_url, username=self.username, password=self.password,
            timeout=self.timeout_seconds, server_timezone=self.server_timezone,
            retry=RetryPolicy(self.max_retries, self.backoff_base_seconds, self.backoff_max_seconds),
        )

    def profile(self) -> MappingProfile:
        return load_profile(self.mapping)
