"""A faithful 1C:Enterprise 8.3 standard OData simulator (УТ 11.5, УТ 11.4 and УНФ namings).

    from simulators.onec import Dataset, FaultConfig, create_app
    app = create_app(Dataset(size=100_000), configuration="ut11")

See simulators/onec/app.py for the HTTP surface and dataset.py for the data and its mutation API.
"""

from simulators.onec.app import create_app
from simulators.onec.dataset import Dataset
from simulators.onec.faults import BrokenJsonRule, FaultConfig

__all__ = ["BrokenJsonRule", "Dataset", "FaultConfig", "create_app"]
