"""Reference warehouse loaders: full, incremental and CDC, into a DuckDB file.

Each keeps the warehouse table ``sales`` equal to the dataset's last committed run and its
position in the control table ``fastgen_load_state``, both in one transaction per load.
``verify_warehouse`` checks the table against the ground truth in the last manifest.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import duckdb

from fastgen.dataset import Dataset, DatasetError
from fastgen.loaders import cdc, full, incremental
from fastgen.loaders.warehouse import STRATEGIES, LoadStats, connect, verify_warehouse

LOADERS: dict[str, Callable[[Dataset, duckdb.DuckDBPyConnection], LoadStats]] = {
    "full": full.load, "incremental": incremental.load, "cdc": cdc.load}

__all__ = ["LOADERS", "STRATEGIES", "LoadStats", "connect", "load", "verify_warehouse"]


def load(strategy: str, data: str | os.PathLike | Dataset,
         warehouse: str | os.PathLike) -> LoadStats:
    """Open the warehouse file, load it from the dataset with ``strategy``, close it."""
    dataset = data if isinstance(data, Dataset) else Dataset(data)
    con = connect(warehouse)
    try:
        return LOADERS[strategy](dataset, con)
    except duckdb.Error as exc:  # rolled back already; say so in one sentence
        raise DatasetError(f"the {strategy} load into {warehouse} failed and was rolled back "
                           f"({str(exc).splitlines()[0]}).") from exc
    finally:
        con.close()
