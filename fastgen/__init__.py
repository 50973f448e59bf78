"""fastgen: deterministic, daily-changing sales data for testing data-warehouse loaders."""

from fastgen.config import STRESS, ChangeModel, ConfigError, Model, SalesModel, StressModel
from fastgen.dataset import Dataset, DatasetError
from fastgen.digest import Digest, digest
from fastgen.model import Simulation

__all__ = ["STRESS", "ChangeModel", "ConfigError", "Dataset", "DatasetError", "Digest", "Model",
           "SalesModel", "Simulation", "StressModel", "digest", "scan", "read", "generate", "day"]


def day(model: Model, start, index: int = 0):
    """Day ``index`` of a dataset starting at ``start``, in memory, as a Polars DataFrame."""
    return Simulation(model, start).day(index)


def generate(path, *, days: int = 1, model: Model | None = None, start=None,
             fmt: str | None = None, feed: str | None = None, workers: int | None = None,
             dask: str | None = None):
    """Make ``days`` more runs in the dataset folder ``path`` (created if needed).

    On an existing dataset, ``model`` and ``fmt`` may be omitted; if given, they must be the
    dataset's own (a ConfigError names the fields that differ); ``start`` is ignored.
    ``feed="none"`` writes no change feed. ``workers`` and ``dask`` spread the call's tasks as the command line's options do (the
    same bytes).
    """
    from fastgen.build.executors import executor

    import datetime

    if Dataset.exists(path):
        ds = Dataset(path)
        differ = model.differences(ds.model) if model is not None else []
        if fmt is not None and fmt != ds.format:
            differ.append("format")
        if feed is not None and feed != ds.feed:
            differ.append("feed")
        if differ:
            raise ConfigError(f"{', '.join(differ)} differ(s) from the dataset's in {path}; "
                              "that would change the model of an existing dataset.")
    else:
        ds = Dataset.create(path, model or Model(), start or datetime.date.today(),
                            fmt or "parquet", feed or "full")
    with executor(workers, dask) as runner:
        return ds.write(days, executor=runner)


def scan(path):
    """The committed sales of the dataset at ``path`` as a Polars LazyFrame.

    It reads the files when collected; collect it inside ``with Dataset(path).reading():``
    (or use ``read``) if a writer may commit meanwhile.
    """
    return Dataset(path).scan()


def read(path):
    """The committed sales of the dataset at ``path`` as a Polars DataFrame, read while no
    commit can replace files (one committed run, whatever a writer does meanwhile)."""
    dataset = Dataset(path)
    with dataset.reading():
        return dataset.scan().collect()
