"""fastgen: deterministic, daily-changing sales data for testing data-warehouse loaders."""

from fastgen.config import ChangeModel, ConfigError, Model, SalesModel
from fastgen.dataset import Dataset, DatasetError
from fastgen.digest import Digest, digest
from fastgen.model import Simulation

__all__ = ["ChangeModel", "ConfigError", "Dataset", "DatasetError", "Digest", "Model",
           "SalesModel", "Simulation", "digest", "scan", "generate", "day"]


def day(model: Model, start, index: int = 0):
    """Day ``index`` of a dataset starting at ``start``, in memory, as a Polars DataFrame."""
    return Simulation(model, start).day(index)


def generate(path, *, days: int = 1, model: Model | None = None, start=None,
             fmt: str = "parquet"):
    """Make ``days`` more runs in the dataset folder ``path`` (created if needed)."""
    import datetime

    ds = Dataset(path) if Dataset.exists(path) else Dataset.create(
        path, model or Model(), start or datetime.date.today(), fmt)
    ds.lock()
    try:
        ds.recover()
        ds.check_committed_files()
        return ds.generate(days)
    finally:
        ds.unlock()


def scan(path):
    """The committed sales of the dataset at ``path`` as a Polars LazyFrame."""
    return Dataset(path).scan()
