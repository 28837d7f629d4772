"""Bitrix24 change events back into ZETA: receiver (`receiver.py`), apply and reconcile
(`apply.py`, plain functions), and their Dagster jobs, sensor and schedule (`jobs.py`)."""
