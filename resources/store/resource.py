"""Dagster resource for the product/outbox database."""

from __future__ import annotations

from dagster import ConfigurableResource

from resources.store.database import Database, get_database


class StoreResource(ConfigurableResource):
    """The SQLAlchemy URL of the store; empty means `ZETA_DATABASE_URL` or the SQLite default."""

    database_url: str = ""

    def database(self) -> Database:
        return get_database(self.database_url or None)
