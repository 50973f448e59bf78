"""The command line: help, bad input, model options on an existing dataset, resume, info, verify, CSV.

Bad input (STYLE.md rule 9, issue 2 item 8) gets exactly one line on stderr, exit status 2, and
changes nothing on disk: every such test compares the folder tree and its bytes before and after.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from conftest import SMALL, START
from fastgen.dataset import Dataset
from fastgen.formats import csv as csv_format
from fastgen.schema import SALES_SCHEMA

ROWS = 1000


def manifests(root: Path) -> list[dict]:
    """Every committed manifest of the dataset at ``root``, oldest run first."""
    return [json.loads(p.read_text()) for p in sorted((root / "manifests").glob("*.json"))]


def assert_refused(result, before: dict, after: dict, *, names: str | None = None) -> None:
    """Exit 2, one line on stderr (naming ``names``), nothing on disk changed."""
    assert result.code == 2, (result.code, result.out, result.err)
    assert len(result.err_lines) == 1, result.err
    if names is not None:
        assert names in result.err, result.err
    assert after == before, "a refused call changed files on disk"


# ---- help --------------------------------------------------------------------------------

def _help_entries(text: str) -> dict[str, str]:
    """Option flag -> its whole help entry, whitespace collapsed."""
    entries: dict[str, list[str]] = {}
    current = None
    for line in text.splitlines():
        m = re.match(r"^\s{2}(?:-\w+, )?(--[\w-]+)", line)
        if m:
            current = m.group(1)
            entries[current] = [line]
        elif current and line.startswith("      "):
            entries[current].append(line)
        else:
            current = None
    return {flag: " ".join(" ".join(lines).split()) for flag, lines in entries.items()}


def test_generate_help_documents_every_option_with_one_default(run_cli):
    result = run_cli("generate", "--help")
    assert result.code == 0
    entries = _help_entries(result.out)
    entries.pop("--help", None)
    # The options issue 2 names, and every model option (issue 3) among the rest.
    for flag in ("--data", "--start-date", "--days", "--rows-per-day", "--seed", "--format",
                 "--rush-hours", "--update-rate", "--delete-rate", "--delete-mode", "--late-share"):
        assert flag in entries, f"{flag} is not in `fastgen generate --help`"
    in_usage = set(re.findall(r"\[(--[\w-]+)", result.out)) - {"--help"}
    assert in_usage <= set(entries), in_usage - set(entries)
    problems = []
    for flag, text in entries.items():
        defaults = re.findall(r"\(default: ([^)]*)\)", text)
        if len(defaults) != 1 or defaults[0] in ("None", ""):
            problems.append(f"{flag}: {text}")
    assert not problems, "each option must state its default exactly once:\n" + "\n".join(problems)
    shown = {flag: re.search(r"\(default: ([^)]*)\)", text).group(1) for flag, text in entries.items()}
    assert shown["--data"] == "data"
    assert shown["--days"] == "1"
    assert shown["--start-date"] == "today"
    assert shown["--format"] == "parquet"
    assert shown["--seed"] == "0"
    assert shown["--rows-per-day"].replace(",", "").replace("_", "") == "1000000"


# ---- bad input ---------------------------------------------------------------------------

BAD_NEW = {
    "date-slashes": ("--start-date", "2025/01/01"),
    "date-word": ("--start-date", "yesterday"),
    "date-short-fields": ("--start-date", "2025-1-1"),
    "date-empty": ("--start-date", ""),
    "date-basic-iso": ("--start-date", "20250101"),  # help promises YYYY-MM-DD
    "date-iso-week": ("--start-date", "2025-W01-3"),  # help promises YYYY-MM-DD
    "date-feb-30": ("--start-date", "2025-02-30"),
    "date-month-13": ("--start-date", "2025-13-01"),
    "date-feb-29-non-leap": ("--start-date", "2023-02-29"),
    "rows-zero": ("--rows-per-day", "0"),
    "rows-negative": ("--rows-per-day", "-5"),
    "rows-word": ("--rows-per-day", "abc"),
    "rows-float": ("--rows-per-day", "1.5"),
    "days-zero": ("--days", "0"),
    "days-negative": ("--days", "-1"),
    "unknown-option": ("--bogus",),
    "unknown-option-value": ("--colour", "red"),
    "bad-format": ("--format", "xml"),
    "inconsistent-model": ("--rush-hours", "9,17", "--rush-weights", "1"),
}


@pytest.mark.parametrize("args", BAD_NEW.values(), ids=BAD_NEW.keys())
def test_bad_input_is_refused_and_creates_nothing(run_cli, snapshot, tmp_path, args):
    target = tmp_path / "new"
    before = snapshot(tmp_path)
    result = run_cli("generate", "--data", target, "--rows-per-day", ROWS, *args)
    assert_refused(result, before, snapshot(tmp_path))
    assert not target.exists(), "a refused call created the --data folder"


def test_unknown_subcommand_is_refused(run_cli, snapshot, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    before = snapshot(tmp_path)
    assert_refused(run_cli("frobnicate", "--data", "x"), before, snapshot(tmp_path))


@pytest.mark.parametrize("args", [("--days", "0"), ("--rows-per-day", "abc"), ("--bogus",),
                                  ("--start-date", "2025-02-30")], ids=str)
def test_bad_input_on_an_existing_dataset_changes_nothing(run_cli, snapshot, small_dataset, args):
    root = small_dataset(days=2)
    before = snapshot(root)
    assert_refused(run_cli("generate", "--data", root, *args), before, snapshot(root))


def test_data_that_is_a_file_is_refused(run_cli, snapshot, tmp_path):
    target = tmp_path / "a-file"
    target.write_bytes(b"not a folder\n")
    before = snapshot(tmp_path)
    assert_refused(run_cli("generate", "--data", target, *SMALL), before, snapshot(tmp_path))


def test_data_under_a_file_is_refused(run_cli, snapshot, tmp_path):
    # Cannot be written by anyone, root included: a parent of the folder is a file.
    (tmp_path / "a-file").write_bytes(b"x")
    before = snapshot(tmp_path)
    result = run_cli("generate", "--data", tmp_path / "a-file" / "data", *SMALL)
    assert_refused(result, before, snapshot(tmp_path))


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0,
                    reason="root writes into read-only folders; covered by a --data under a file")
def test_data_in_a_read_only_folder_is_refused(run_cli, snapshot, tmp_path):
    locked = tmp_path / "read-only"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        before = snapshot(tmp_path)
        result = run_cli("generate", "--data", locked / "data", *SMALL)
        assert_refused(result, before, snapshot(tmp_path))
    finally:
        locked.chmod(0o755)


NOT_OURS = {
    "other-json": json.dumps({"name": "some other tool", "version": 3}),
    "not-json": "this is not JSON\n",
    "json-list": "[1, 2, 3]\n",
    "empty": "",
}


@pytest.mark.parametrize("command", ["generate", "info", "verify"])
@pytest.mark.parametrize("content", NOT_OURS.values(), ids=NOT_OURS.keys())
def test_identity_file_that_is_not_ours_is_refused(run_cli, snapshot, tmp_path, command, content):
    root = tmp_path / "data"
    root.mkdir()
    (root / "fastgen.json").write_text(content)
    before = snapshot(tmp_path)
    extra = SMALL if command == "generate" else ()
    result = run_cli(command, "--data", root, *extra)
    assert_refused(result, before, snapshot(tmp_path))


def test_identity_of_a_newer_format_is_refused(run_cli, snapshot, small_dataset):
    root = small_dataset(days=1)
    identity = json.loads((root / "fastgen.json").read_text())
    identity["format_version"] += 1
    (root / "fastgen.json").write_text(json.dumps(identity))
    before = snapshot(root)
    result = run_cli("generate", "--data", root, "--days", "1")
    assert_refused(result, before, snapshot(root))
    assert "version" in result.err


# ---- model options on an existing dataset -------------------------------------------------

@pytest.mark.parametrize("flag,value", [("--seed", "5"), ("--rows-per-day", "999"),
                                        ("--rush-hours", "8,18"), ("--update-rate", "0.2"),
                                        ("--delete-mode", "hard")])
def test_changing_the_model_of_an_existing_dataset_is_refused(run_cli, snapshot, small_dataset,
                                                              flag, value):
    root = small_dataset(days=1)
    before = snapshot(root)
    result = run_cli("generate", "--data", root, flag, value)
    assert_refused(result, before, snapshot(root), names=flag)


def test_changing_the_format_of_an_existing_dataset_is_refused(run_cli, snapshot, small_dataset):
    root = small_dataset(days=1)
    before = snapshot(root)
    result = run_cli("generate", "--data", root, "--format", "csv")
    assert_refused(result, before, snapshot(root), names="--format")


def test_repeating_the_model_options_of_an_existing_dataset_is_accepted(run_cli, small_dataset):
    root = small_dataset("--seed", "3", days=1)
    result = run_cli("generate", "--data", root, "--seed", "3", "--rows-per-day", ROWS,
                     "--rush-hours", "9,17")
    assert result.code == 0, result.err
    assert len(manifests(root)) == 2


# ---- resume ------------------------------------------------------------------------------

def _inserted_ids(root: Path, run_date: str) -> pl.Series:
    feed = pl.read_parquet(root / "changes" / f"run_date={run_date}" / "*.parquet")
    return feed.filter(pl.col("op") == "insert")["sale_id"]


def test_resume_continues_at_the_next_day_and_ignores_start_date(run_cli, tmp_path):
    root = tmp_path / "data"
    first = run_cli("generate", "--data", root, "--days", "2", *SMALL)
    assert first.code == 0, first.err
    assert "ignored" not in first.err

    second = run_cli("generate", "--data", root, "--days", "1", "--start-date", "2030-06-01")
    assert second.code == 0, second.err
    assert "--start-date" in second.err and "ignored" in second.err, second.err
    assert "2025-01-03" in second.out  # the summary line names the day made
    dates = sorted(p.name for p in (root / "sales").iterdir())
    assert dates == [f"sale_date=2025-01-0{d}" for d in (1, 2, 3)]
    assert [m["run_date"] for m in manifests(root)] == ["2025-01-01", "2025-01-02", "2025-01-03"]

    third = run_cli("generate", "--data", root)  # no --start-date: nothing to say about it
    assert third.code == 0, third.err
    assert "ignored" not in third.err

    for run, run_date in enumerate(["2025-01-01", "2025-01-02", "2025-01-03", "2025-01-04"]):
        ids = _inserted_ids(root, run_date)
        assert ids.min() == run * ROWS + 1, run_date
        assert ids.max() == (run + 1) * ROWS, run_date
        assert ids.n_unique() == ROWS


def test_one_summary_line_per_day(run_cli, tmp_path):
    result = run_cli("generate", "--data", tmp_path / "data", "--days", "3", *SMALL)
    assert result.code == 0, result.err
    for day in ("2025-01-01", "2025-01-02", "2025-01-03"):
        assert len([line for line in result.out_lines if line.startswith(day)]) == 1, result.out


# ---- info --------------------------------------------------------------------------------

def test_info_prints_days_rows_and_size(run_cli, small_dataset):
    root = small_dataset(days=3)
    result = run_cli("info", "--data", root)
    assert result.code == 0, result.err
    rows = pl.scan_parquet(root / "sales", hive_partitioning=True).select(pl.len()).collect().item()
    text = result.out
    assert re.search(r"\b3 days\b", text), text
    assert f"{rows:,}" in text or str(rows) in text, (rows, text)
    assert re.search(r"\d[\d.,]*\s*(B|kB|KB|MB|GB|bytes)\b", text), text


def test_info_on_a_folder_without_a_dataset_is_refused(run_cli, snapshot, tmp_path):
    before = snapshot(tmp_path)
    assert_refused(run_cli("info", "--data", tmp_path / "nothing"), before, snapshot(tmp_path))
    assert not (tmp_path / "nothing").exists()


# ---- verify ------------------------------------------------------------------------------

DAMAGED = "2025-01-02"


def _flip_byte(root: Path) -> None:
    path = next((root / "sales" / f"sale_date={DAMAGED}").glob("*.parquet"))
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def _delete_partition(root: Path) -> None:
    shutil.rmtree(root / "sales" / f"sale_date={DAMAGED}")


def _edit_manifest(root: Path) -> None:
    # The manifest of the day's own run: it always holds that day's truth (format 3 manifests
    # hold the days their run changed).
    path = root / "manifests" / f"run_date={DAMAGED}.json"
    manifest = json.loads(path.read_text())
    manifest["partitions"][DAMAGED]["rows"] += 1
    path.write_text(json.dumps(manifest, indent=1))


def test_verify_passes_on_a_sound_dataset(run_cli, small_dataset):
    root = small_dataset(days=3)
    result = run_cli("verify", "--data", root)
    assert result.code == 0, result.out + result.err
    assert len(result.out_lines) == 1, result.out
    assert not result.err_lines, result.err


@pytest.mark.parametrize("damage", [_flip_byte, _delete_partition, _edit_manifest],
                         ids=["flipped-byte", "deleted-partition", "edited-manifest"])
def test_verify_names_the_damaged_partition(run_cli, small_dataset, damage):
    root = small_dataset(days=3)
    damage(root)
    result = run_cli("verify", "--data", root)
    assert result.code == 1, result.out + result.err
    lines = result.out_lines + result.err_lines
    assert any(DAMAGED in line for line in lines), lines
    # Sound partitions are not blamed (a manifest's own name may carry a run date).
    blamed = [f"{k}{d}" for d in ("2025-01-01", "2025-01-03") for k in ("partition ", "sale_date=")]
    assert not [line for line in lines if any(b in line for b in blamed)], lines


# ---- CSV ---------------------------------------------------------------------------------

def test_csv_has_the_parquet_layout_and_values(run_cli, tmp_path):
    roots = {}
    for fmt in ("parquet", "csv"):
        roots[fmt] = tmp_path / fmt
        result = run_cli("generate", "--data", roots[fmt], "--days", "4", "--format", fmt,
                         "--seed", "11", *SMALL)
        assert result.code == 0, result.err

    def layout(root: Path, ext: str) -> list[str]:
        files = sorted(str(p.relative_to(root)) for p in root.rglob("*")
                       if p.is_file() and p.parts[len(root.parts)] in ("sales", "changes"))
        assert files and all(f.endswith(ext) for f in files), files
        return [f[: -len(ext)] for f in files]

    assert layout(roots["csv"], ".csv") == layout(roots["parquet"], ".parquet")
    assert sorted(p.name for p in (roots["csv"] / "manifests").iterdir()) == \
        sorted(p.name for p in (roots["parquet"] / "manifests").iterdir())

    for path in sorted((roots["parquet"] / "sales").rglob("*.parquet")):
        twin = roots["csv"] / path.relative_to(roots["parquet"]).with_suffix(".csv")
        # Read with Polars alone, with the schema's types: the values, not fastgen's reader.
        assert_frame_equal(pl.read_csv(twin, schema=SALES_SCHEMA), pl.read_parquet(path))
    for path in sorted((roots["parquet"] / "changes").rglob("*.parquet")):
        twin = roots["csv"] / path.relative_to(roots["parquet"]).with_suffix(".csv")
        assert_frame_equal(csv_format.read([str(twin)]), pl.read_parquet(path))

    truth = [{d: {k: p[k] for k in ("rows", "live_rows", "amount", "row_hash")}
              for d, p in m["partitions"].items()} for m in manifests(roots["csv"])]
    assert truth == [{d: {k: p[k] for k in ("rows", "live_rows", "amount", "row_hash")}
                      for d, p in m["partitions"].items()} for m in manifests(roots["parquet"])]
    verified = run_cli("verify", "--data", roots["csv"])
    assert verified.code == 0, verified.out + verified.err
    last = Dataset(roots["csv"]).snapshot()
    total = sum(Decimal(p["amount"]) for p in last["partitions"].values())
    read = pl.concat([pl.read_csv(p, schema=SALES_SCHEMA)
                      for p in (roots["csv"] / "sales").rglob("*.csv")])["amount"].sum()
    assert Decimal(str(read)) == total


# ---- the real console script -------------------------------------------------------------

def test_console_script_refuses_bad_input_with_status_2(run_script, tmp_path):
    result = run_script("generate", "--data", tmp_path / "new", "--days", "0")
    assert result.code == 2
    assert len(result.err_lines) == 1, result.err
    assert not (tmp_path / "new").exists()


def test_python_dash_m_runs_the_cli(tmp_path):
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "fastgen", "generate", "--help"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "--rows-per-day" in done.stdout
