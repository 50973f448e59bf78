"""Golden files: today's bytes and ground truth of a tiny dataset with every kind of change,
pinned in tests/golden/<format>.json so that a refactor of the generation code cannot change
them unnoticed. tests/golden/make_golden.py makes the dataset and the golden files; regenerate
them only with a deliberate change of bytes, which bumps FORMAT_VERSION and says why in the
README's "Format history".

The ground truth and the counts are compared whatever the library versions; the files' sha256
only with the polars and numpy versions they were made with (Parquet files embed the writer's
version, and numpy does not promise its Philox multinomial stream across versions). The row
hash covers sold_at, which that multinomial draws, so a numpy that changed its stream fails
the ground truth too; the failure then names both numpy versions.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from fastgen.dataset import Dataset

from fastgen.dataset import FORMAT_VERSION

_spec = importlib.util.spec_from_file_location(
    "make_golden", Path(__file__).parent / "golden" / "make_golden.py")
golden = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(golden)

REGENERATE = ("if the change is deliberate, bump FORMAT_VERSION, say why in the README's "
              "\"Format history\" and regenerate with `.venv/bin/python tests/golden/make_golden.py`")
# Manifest keys that the README says depend on how runs were grouped into calls.
BATCH_KEYS = ("files", "files_complete", "renames", "bytes_written")
# Versions that must match the golden file's for its sha256 to be compared.
BYTE_VERSIONS = ("polars", "numpy")


@pytest.fixture(scope="module", params=golden.FILE_FORMATS)
def made(request, tmp_path_factory) -> tuple[str, dict, Path]:
    """(format, golden file, the golden dataset made again as 4 + 1 + 1 calls)."""
    fmt = request.param
    root = tmp_path_factory.mktemp(f"golden-{fmt}") / "data"
    golden.generate(root, fmt)
    return fmt, json.loads(golden.golden_path(fmt).read_text()), root


def _differences(actual: dict, expected: dict) -> list[str]:
    keys = sorted(actual.keys() | expected.keys())
    return [f"{k}: {actual.get(k, 'missing')} != golden {expected.get(k, 'missing')}"
            for k in keys if actual.get(k) != expected.get(k)]


def test_golden_file_describes_this_dataset(made):
    fmt, gold, _ = made
    assert gold["dataset"] == {"format": fmt, "calls": list(golden.CALLS),
                               "args": list(golden.ARGS)}, (
        f"tests/golden/{fmt}.json was made with other options than make_golden.py has now; "
        "regenerate it")


def test_format_version_is_the_golden_one(made):
    fmt, gold, _ = made
    assert FORMAT_VERSION == gold["format_version"], (
        f"FORMAT_VERSION is {FORMAT_VERSION} but tests/golden/{fmt}.json pins version "
        f"{gold['format_version']}: regenerate the golden files with "
        "`.venv/bin/python tests/golden/make_golden.py` and say in the README's "
        "\"Format history\" what changed in the bytes")


def test_ground_truth_and_counts_are_the_golden_ones(made):
    fmt, gold, root = made
    days = golden.day_truth(root, fmt)
    note = ""
    if golden.versions()["numpy"] != gold["versions"]["numpy"]:
        note = (f" (numpy is {golden.versions()['numpy']}, the golden file's "
                f"{gold['versions']['numpy']}: row_hash covers sold_at, drawn with numpy's "
                "Philox multinomial)")
    problems = [f"day {day} {line}" for day in sorted(days.keys() | gold["days"].keys())
                for line in _differences(days.get(day, {}), gold["days"].get(day, {}))]
    counts = golden.run_counts(root)
    problems += [f"run {run} {line}" for run in sorted(counts.keys() | gold["counts"].keys())
                 for line in _differences(counts.get(run, {}), gold["counts"].get(run, {}))]
    assert not problems, (f"the {fmt} dataset's ground truth differs from tests/golden/"
                          f"{fmt}.json{note}; {REGENERATE}:\n" + "\n".join(problems))
    # The last commit claims the same ground truth as the files hold.
    last = Dataset(root).snapshot()["partitions"]
    assert {d: {k: p[k] for k in golden.TRUTH_KEYS} for d, p in last.items()} == days


def test_file_bytes_are_the_golden_ones(made):
    fmt, gold, root = made
    now = golden.versions()
    differ = [f"{lib} {now[lib]} (golden: {gold['versions'][lib]})"
              for lib in BYTE_VERSIONS if now[lib] != gold["versions"][lib]]
    if differ:
        pytest.skip(f"{fmt} file bytes are pinned for other library versions: {', '.join(differ)}")
    hashes = golden.file_hashes(root)
    problems = _differences(hashes, gold["files"])
    assert not problems, (f"{len(problems)} of {len(gold['files'])} {fmt} files differ from "
                          f"tests/golden/{fmt}.json; {REGENERATE}:\n" + "\n".join(problems))


def test_the_golden_dataset_has_every_kind_of_change(made):
    """Guards the golden dataset itself: a day and a feed of 2+ files, and each kind of change
    in a backfill run and in a daily run."""
    fmt, gold, _ = made
    files = gold["files"]
    for folder, key in (("sales", "sale_date"), ("changes", "run_date")):
        per = {}
        for rel in files:
            if rel.startswith(f"{folder}/"):
                per[rel.split("/")[1]] = per.get(rel.split("/")[1], 0) + 1
        assert len(per) == 6 and min(per.values()) >= 2, (folder, per)
    runs = list(gold["counts"].values())
    for kind in ("updates", "soft_deletes", "hard_deletes", "late_rows"):
        assert runs[golden.CALLS[0] - 1][kind] > 0 and runs[-1][kind] > 0, kind


def test_golden_files_of_both_formats_hold_the_same_ground_truth():
    parquet, csv = (json.loads(golden.golden_path(f).read_text()) for f in golden.FILE_FORMATS)
    assert parquet["days"] == csv["days"]
    assert parquet["counts"] == csv["counts"]


def test_one_backfill_call_writes_what_the_split_calls_write(made, tmp_path):
    fmt, _, split = made
    one = tmp_path / "one-call"
    golden.generate(one, fmt, calls=(sum(golden.CALLS),))
    hashes = golden.file_hashes(one)
    split_hashes = golden.file_hashes(split)
    sales = lambda h: {k: v for k, v in h.items() if k.startswith("sales/")}  # noqa: E731
    assert sales(hashes) == sales(split_hashes)
    # The README promises the feeds too, and manifests equal but for the keys of a batch.
    assert hashes == split_hashes
    one_m, split_m = golden.manifests(one), golden.manifests(split)
    assert one_m.keys() == split_m.keys()
    strip = lambda m: {k: v for k, v in m.items() if k not in BATCH_KEYS}  # noqa: E731
    for run_date in one_m:
        assert strip(one_m[run_date]) == strip(split_m[run_date]), run_date
    # The last commit lists the same current files, whichever way they were made.
    assert Dataset(one).snapshot()["files"] == Dataset(split).snapshot()["files"]
