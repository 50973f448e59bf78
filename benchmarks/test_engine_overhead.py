"""Per-task overhead of the engines that run a call's tasks (issue 9): Dask's LocalCluster
against the forkserver pool of ``--workers``, two single-threaded workers each, a no-op task
(``abs``) one round trip at a time and in a batch. Split from ``test_scaleout.py``, whose
backfills it explains (benchmarks/README.md, "Dask's per-task overhead").

Environment: ``FASTGEN_BENCH_DASK_TASKS``, the no-op tasks of a round (default 200).
"""

from __future__ import annotations

import os
import time

import pytest

TRIVIAL_TASKS = int(os.environ.get("FASTGEN_BENCH_DASK_TASKS", "200"))


@pytest.fixture(scope="module", params=["dask", "processes"])
def engine(request):
    """Two single-threaded worker processes, started outside the timings: a Dask
    LocalCluster as ``--dask local --workers 2`` starts it, or the forkserver pool of
    ``--workers 2``. Yields (name, submit, gather, start-up seconds)."""
    t0 = time.perf_counter()
    if request.param == "dask":
        distributed = pytest.importorskip("distributed")
        cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                           dashboard_address=None)
        client = distributed.Client(cluster)
        client.gather([client.submit(abs, -1, pure=False)])
        started = time.perf_counter() - t0
        yield "dask", (lambda x: client.submit(abs, x, pure=False)), client.gather, started
        client.close()
        cluster.close()
    else:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        pool = ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("forkserver"))
        list(pool.map(abs, [-1, -2]))
        started = time.perf_counter() - t0
        yield ("processes", (lambda x: pool.submit(abs, x)),
               (lambda futures: [f.result() for f in futures]), started)
        pool.shutdown()


def test_trivial_task_round_trip(benchmark, engine):
    """Per-task overhead, one at a time: submit a no-op (abs), wait for its result, repeat."""
    name, submit, gather, started = engine

    def round_trips():
        for i in range(TRIVIAL_TASKS):
            gather([submit(-i)])

    benchmark.pedantic(round_trips, rounds=3, warmup_rounds=1)
    ms = benchmark.stats.stats.min / TRIVIAL_TASKS * 1e3
    benchmark.extra_info.update(engine=name, tasks=TRIVIAL_TASKS, ms_per_task=ms,
                                engine_start_s=started)
    print(f"\n{name}: {ms:.2f} ms a task, round trip ({TRIVIAL_TASKS} tasks; "
          f"engine start {started:.1f} s)")


def test_trivial_task_batch(benchmark, engine):
    """Per-task overhead, all at once: submit every no-op, then gather them."""
    name, submit, gather, _ = engine

    def batch():
        assert gather([submit(-i) for i in range(TRIVIAL_TASKS)]) == list(range(TRIVIAL_TASKS))

    benchmark.pedantic(batch, rounds=3, warmup_rounds=1)
    ms = benchmark.stats.stats.min / TRIVIAL_TASKS * 1e3
    benchmark.extra_info.update(engine=name, tasks=TRIVIAL_TASKS, ms_per_task=ms)
    print(f"\n{name}: {ms:.3f} ms a task, in a batch of {TRIVIAL_TASKS}")
