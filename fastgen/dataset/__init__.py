"""The on-disk dataset, one noun per module: layout, identity, manifest, lock, commit, check."""

from fastgen.dataset.check import signature
from fastgen.dataset.layout import CHECKED, FORMAT_VERSION, IDENTITY, LOCK, check_writable
from fastgen.dataset.store import Dataset
from fastgen.errors import DatasetError, LockedError, UsageError

__all__ = ["CHECKED", "FORMAT_VERSION", "IDENTITY", "LOCK", "Dataset", "DatasetError", "LockedError",
           "UsageError", "check_writable", "signature"]
