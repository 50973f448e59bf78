"""Generation: a batch of runs made into staged files, then committed by the dataset layer."""

from fastgen.build.batch import Batch, RunSummary

__all__ = ["Batch", "RunSummary"]
