"""Benchmark report: ``python -m benchmarks.report results.json [--png chart.png]``.

Reads the JSON that ``pytest --benchmark-only --benchmark-json=results.json`` writes (``make
bench``) and prints Markdown: the targets table (met / missed, ``benchmarks/suite.py``), the
programs of the whole-process day benchmarks (``benchmarks/test_day.py``), and, from the
benchmarks of ``benchmarks/test_reprocess.py``, a table
of one day's cost against history length H per strategy (and the generator's own daily run),
each strategy's fitted growth exponent (the slope of log cost against log H, over all H and
over H >= 90, where the changed window of about 60 days is behind), and the history length
where incremental and CDC become cheaper than full reprocessing. With matplotlib installed
(``pip install fastgen[report]``) it also draws cost against H on log-log axes, as a PNG.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

ORDER = ("full", "incremental", "cdc", "watermark", "scd2", "generate")
LABELS = {"full": "full", "incremental": "incremental", "cdc": "CDC", "watermark": "watermark",
          "scd2": "SCD2 history", "generate": "generator's daily run"}
# From here on the default change model's window of changed days (about 60) is behind.
TAIL_FROM = 90


def load_results(path: Path) -> dict[str, dict[int, dict]]:
    """{strategy: {H: {"seconds": min over rounds, **extra_info}}} of a benchmark JSON."""
    data = json.loads(Path(path).read_text())
    out: dict[str, dict[int, dict]] = defaultdict(dict)
    for bench in data.get("benchmarks", []):
        info = bench.get("extra_info", {})
        if "history_days" not in info or "strategy" not in info:
            continue
        out[info["strategy"]][int(info["history_days"])] = {"seconds": bench["stats"]["min"],
                                                            **info}
    return dict(out)


def exponent(hs: list[int], costs: list[float]) -> float | None:
    """Least-squares slope of log(cost) on log(H): cost grows like H**slope."""
    if len(hs) < 2:
        return None
    return float(np.polyfit(np.log(hs), np.log(costs), 1)[0])


def crossover(hs: list[int], full: list[float], other: list[float]) -> str:
    """The H from which ``other`` is cheaper than full, interpolated on log-log axes."""
    gaps = [math.log(o) - math.log(f) for f, o in zip(full, other)]
    if all(g < 0 for g in gaps):
        return f"cheaper at every H measured (from {hs[0]})"
    if gaps[-1] >= 0:
        return f"not cheaper up to H = {hs[-1]}"
    i = max(k for k, g in enumerate(gaps) if g >= 0)  # last H where full was not worse
    x0, x1 = math.log(hs[i]), math.log(hs[i + 1])
    x = x0 + (x1 - x0) * gaps[i] / (gaps[i] - gaps[i + 1])
    return f"H ≈ {math.exp(x):.0f}"


def _fmt_seconds(s: float) -> str:
    return f"{s * 1e3:.0f} ms" if s < 1 else f"{s:.2f} s"


def _table(head: list[str], rows: list[list[str]], align: str = "---:") -> list[str]:
    return (["| " + " | ".join(head) + " |", "|" + "|".join([align] * len(head)) + "|"]
            + ["| " + " | ".join(r) + " |" for r in rows])


def _time(r: dict) -> str:
    cpu = f" ({_fmt_seconds(r['cpu_seconds'])} CPU)" if "cpu_seconds" in r else ""
    return _fmt_seconds(r["seconds"]) + cpu


def _work(r: dict) -> str:
    groups = f" in {r['row_groups']:,} row groups" if r.get("row_groups") is not None else ""
    return (f"{r['rows_read']:,} rows, {r['bytes_read'] / 1e6:,.1f} MB{groups}, "
            f"{r['partitions_touched']} days")


def metrics(results: dict[str, dict[int, dict]]) -> list[str]:
    """The costs measured: wall time always, CPU time when recorded (all threads)."""
    has_cpu = all("cpu_seconds" in r for runs in results.values() for r in runs.values())
    return ["seconds", "cpu_seconds"] if has_cpu else ["seconds"]


def growth(results: dict[str, dict[int, dict]], strategy: str, metric: str) -> list[str]:
    """Exponent over all H, over H >= TAIL_FROM, cost(365)/cost(90), crossover with full."""
    pts = sorted(results[strategy].items())

    def fit(points):
        return _fmt_exp(exponent([h for h, _ in points], [r[metric] for _, r in points]))

    runs = results[strategy]
    ratio = f"{runs[365][metric] / runs[90][metric]:.2f}" if 365 in runs and 90 in runs else ""
    full = results.get("full", {})
    common = [h for h, _ in pts if h in full]
    cross = ""
    if strategy in ("incremental", "cdc", "watermark", "scd2") and len(common) >= 2:
        cross = crossover(common, [full[h][metric] for h in common],
                          [runs[h][metric] for h in common])
    return [fit(pts), fit([(h, r) for h, r in pts if h >= TAIL_FROM]), ratio, cross]


def markdown(results: dict[str, dict[int, dict]]) -> str:
    strategies = [s for s in ORDER if s in results]
    loaders = [s for s in strategies if s != "generate"]
    hs = sorted({h for s in strategies for h in results[s]})
    per_day = sorted({r["rows_per_day"] for s in strategies for r in results[s].values()
                      if r.get("rows_per_day")})
    intro = (f"Rows per day: {', '.join(f'{r:,}' for r in per_day)}. One day's work when the "
             "history holds H days: wall time and, in brackets, CPU time of all threads "
             "(minimum over rounds).")
    lines = [intro, ""]

    def cell(s: str, h: int, fmt) -> str:
        return fmt(results[s][h]) if h in results[s] else ""

    lines += _table(["H", *(LABELS[s] for s in strategies)],
                    [[str(h), *(cell(s, h, _time) for s in strategies)] for h in hs])
    lines += ["", "Work of each load: rows read, MB read (watermark: the row groups its "
              "statistics let through), days touched.", ""]
    lines += _table(["H", *(LABELS[s] for s in loaders)],
                    [[str(h), *(cell(s, h, _work) for s in loaders)] for h in hs])
    names = {"seconds": "wall time", "cpu_seconds": "CPU time", "rows_read": "rows read"}
    head = ["strategy", "cost", "exponent, all H", f"exponent, H ≥ {TAIL_FROM}",
            "cost(365) / cost(90)", "cheaper than full from"]
    rows = [[LABELS[s], names[m], *growth(results, s, m)]
            for s in strategies for m in [*metrics(results), "rows_read"]
            if not (s == "generate" and m == "rows_read")]
    lines += ["", "Growth: cost ∝ H^exponent, fitted on log-log axes.", "",
              *_table(head, rows, "---")]
    return "\n".join(lines) + "\n"


def _fmt_exp(x: float | None) -> str:
    return "" if x is None else f"{x:.2f}"


def chart(results: dict[str, dict[int, dict]], png: Path, title: str = "") -> None:
    """Wall time, CPU time and rows read against H on log-log axes, one line per strategy."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [(m, {"seconds": "wall time (s)", "cpu_seconds": "CPU time (s)"}[m])
              for m in metrics(results)] + [("rows_read", "rows read")]
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 4.5), dpi=110)
    for ax, (metric, ylabel) in zip(axes, panels):
        for s in (s for s in ORDER if s in results):
            pts = sorted(results[s].items())
            if metric == "rows_read" and s == "generate":
                continue
            hs, ys = [h for h, _ in pts], [r[metric] for _, r in pts]
            exp = exponent(hs, ys)
            label = LABELS[s] + (f" (H^{exp:.2f})" if exp is not None else "")
            ax.plot(hs, ys, marker="o", linestyle="--" if s == "generate" else "-", label=label)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("history length H (days)")
        ax.set_title(f"one day's work: {ylabel}")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    per_day = sorted({r.get("rows_per_day") for runs in results.values() for r in runs.values()
                      if r.get("rows_per_day")})
    fig.suptitle(title or "Reprocessing cost against history length, "
                 f"{', '.join(f'{r:,}' for r in per_day)} rows a day (fitted exponent in legend)")
    fig.tight_layout()
    fig.savefig(png)
    plt.close(fig)


def targets_markdown(data: dict) -> str:
    """The session's targets: met or missed, measured against the limit."""
    from benchmarks.suite import Target

    rows = [Target(**{k: v for k, v in t.items() if k != "met"}).row() + (f"{t['load']:.1f}",)
            for t in data.get("targets", [])]
    if not rows:
        return ""
    return "\n".join(["Targets (depend on the machine: recorded, not asserted):", "",
                      *_table(["", "target", "measured", "limit", "load"], [list(r) for r in rows],
                              "---"), ""])


def day_markdown(data: dict) -> str:
    """Each program of the whole-process day benchmarks, best of its rounds."""
    rows = []
    for bench in data.get("benchmarks", []):
        if "test_day.py" not in bench.get("fullname", ""):
            continue
        info = bench.get("extra_info", {})
        programs = {k: v for k, v in info.items() if isinstance(v, dict) and "wall_s" in v}
        if not programs and "wall_s" in info:
            programs = {bench["name"]: info}
        for name, m in programs.items():
            work = m.get("work_after_startup_s")
            rows.append([name, f"{m['wall_s']:.2f} s", "" if work is None else f"{work:.2f} s",
                         f"{m.get('work_rows_per_s', m['rows_per_s']) / 1e6:.2f}M",
                         f"{m['mb_per_s']:.0f}", f"{m['cpu_s']:.2f}",
                         f"{m['peak_rss'] / 1e6:.0f} MB"])
    if not rows:
        return ""
    head = ["program", "wall", "work after start-up", "rows/s (of work if given)", "MB/s",
            "CPU s", "peak RSS"]
    return "\n".join(["A day on the user's path, whole processes (best of the rounds):", "",
                      *_table(head, rows, "---"), ""])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.report",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("results", type=Path, help="pytest-benchmark JSON (--benchmark-json)")
    parser.add_argument("--png", type=Path, default=None,
                        help="chart to write (default: the JSON's name with .png)")
    parser.add_argument("--title", default="", help="title of the chart")
    args = parser.parse_args(argv)
    try:
        results = load_results(args.results)
        data = json.loads(Path(args.results).read_text())
    except (OSError, ValueError) as exc:
        print(f"report: cannot read {args.results}: {exc}", file=sys.stderr)
        return 2
    head = "\n".join(part for part in (targets_markdown(data), day_markdown(data)) if part)
    if not results and not head:
        print(f"report: {args.results} holds no targets, day or reprocessing benchmarks.",
              file=sys.stderr)
        return 2
    print(head, end="\n" if head and results else "")
    if not results:
        return 0
    print(markdown(results), end="")
    png = args.png or args.results.with_suffix(".png")
    try:
        chart(results, png, args.title)
    except ImportError:
        print("report: matplotlib is not installed (pip install fastgen[report]); no chart.",
              file=sys.stderr)
        return 0
    print(f"\n![Reprocessing cost against history length]({png})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
