"""Reference warehouse loaders: full, incremental, CDC and watermark, into a DuckDB file,
and ``scd2``, which builds the type 2 history ``sales_history``.

Each keeps its warehouse table (``sales``; ``sales_history`` for scd2) equal to the dataset's
last committed run and its position in the control table ``fastgen_load_state``, both in one
transaction per load. ``verify_warehouse`` checks the tables against the ground truth in the
last manifest. ``watermark`` is exact only without hard deletes (``fastgen.loaders.watermark``).

They are built on the sinks' exactly-once core (``fastgen.sinks.commit``: the transaction
with its position and checks, the bulk path, a run's feed in pieces; ``fastgen.sinks.verify``:
the comparison by day), the warehouse being one more target of it (``target.Warehouse``).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import timedelta
from functools import partial

import duckdb

from fastgen.dataset import Dataset, DatasetError, UsageError
from fastgen.loaders import cdc, full, incremental, scd2, watermark
from fastgen.loaders.tables import is_interrupt
from fastgen.loaders.verify import verify_warehouse
from fastgen.loaders.warehouse import STRATEGIES, LoadStats, connect

LOADERS: dict[str, Callable[[Dataset, duckdb.DuckDBPyConnection], LoadStats]] = {
    "full": full.load, "incremental": incremental.load, "cdc": cdc.load,
    "watermark": watermark.load, "scd2": scd2.load}
FROM_FEEDS = ("cdc", "scd2")  # strategies that read the change feed

__all__ = ["LOADERS", "STRATEGIES", "LoadStats", "connect", "load", "verify_warehouse"]


def load(strategy: str, data: str | os.PathLike | Dataset,
         warehouse: str | os.PathLike, on_wait: Callable[[], None] | None = None, *,
         lookback: timedelta | None = None) -> LoadStats:
    """Open the warehouse file, load it from the dataset with ``strategy``, close it.

    ``lookback`` (watermark only) widens the watermark's window back by that much.

    The dataset is held at its last committed run while it is read (``Dataset.reading``;
    ``on_wait`` is called if a commit must finish first). A failure rolls the load back;
    Ctrl-C during a query (which DuckDB reports as ``RuntimeError("Query interrupted")``) is
    raised as KeyboardInterrupt, after the rollback.
    """
    dataset = data if isinstance(data, Dataset) else Dataset(data)
    if strategy in FROM_FEEDS and dataset.feed == "none":  # before the warehouse file is made
        raise UsageError(f"{dataset.root} has no change feed (it was made with --feed none); "
                         f"load it with --strategy full or incremental{_no_history(strategy)}.")
    if lookback is not None and strategy != "watermark":
        raise UsageError("--lookback applies to --strategy watermark only.")
    loader = LOADERS[strategy]
    if lookback is not None:
        loader = partial(watermark.load, lookback=lookback)
    con = connect(warehouse)
    try:
        with dataset.reading(on_wait):
            return loader(dataset, con)
    except (duckdb.Error, RuntimeError) as exc:  # rolled back already (run_load)
        if is_interrupt(exc):  # Ctrl-C inside a query: say it as Python does
            raise KeyboardInterrupt from None
        if not isinstance(exc, duckdb.Error):
            raise
        raise DatasetError(f"the {strategy} load into {warehouse} failed and was rolled back "
                           f"({str(exc).splitlines()[0]}).") from exc
    finally:
        con.close()


def _no_history(strategy: str) -> str:
    return " (a type 2 history needs every run's changes)" if strategy == "scd2" else ""
