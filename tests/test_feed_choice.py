"""Issue 10 item 3: `--feed none` for people who only want large datasets.

No change feed is written; the exports are the same bytes as with the feed, manifests and
verify still work, the feed-free loaders load it, the CDC loader refuses it in one line and
creates nothing, and the choice is part of fastgen.json like any model option.
"""

from __future__ import annotations

import json

from conftest import file_hashes

ARGS = ("--rows-per-day", 3000, "--rows-per-file", 1500, "--start-date", "2025-02-01",
        "--seed", 4, "--delete-mode", "mixed")


def test_no_feed_same_exports_and_everything_else_works(run_cli, tmp_path, snapshot):
    full, bare = tmp_path / "full", tmp_path / "bare"
    assert run_cli("generate", "--data", full, "--days", 4, *ARGS).code == 0
    assert run_cli("generate", "--data", bare, "--days", 3, *ARGS, "--feed", "none").code == 0
    assert run_cli("generate", "--data", bare).code == 0  # a daily run, from committed files
    assert not (bare / "changes").exists()
    assert json.loads((bare / "fastgen.json").read_text())["feed"] == "none"
    assert file_hashes(bare, "sales") == file_hashes(full, "sales")
    manifests = sorted((bare / "manifests").glob("*.json"))
    assert all(json.loads(p.read_text())["feed"] == [] for p in manifests)
    assert run_cli("verify", "--data", bare).code == 0

    for strategy in ("full", "incremental"):
        warehouse = tmp_path / f"{strategy}.duckdb"
        assert run_cli("load", "--strategy", strategy, "--warehouse", warehouse,
                       "--data", bare).code == 0
        assert run_cli("verify", "--data", bare, "--warehouse", warehouse).code == 0
    before = snapshot(tmp_path)
    refused = run_cli("load", "--strategy", "cdc", "--warehouse", tmp_path / "cdc.duckdb",
                      "--data", bare)
    assert refused.code == 2 and len(refused.err_lines) == 1 and "--feed none" in refused.err
    assert snapshot(tmp_path) == before, "a refused cdc load created files"


def test_the_feed_choice_is_refused_on_an_existing_dataset(run_cli, small_dataset, snapshot):
    data = small_dataset(days=1)
    before = snapshot(data)
    refused = run_cli("generate", "--data", data, "--feed", "none")
    assert refused.code == 2 and "--feed differs" in refused.err
    assert snapshot(data) == before
