"""A sweep of design points on Dask: one task per point, results kept as they arrive.

:func:`dask_client` gives a ``distributed`` client: by default a ``LocalCluster`` of worker
processes with one thread each (Yosys and nextpnr are single-threaded, and each build runs its
tools as child processes of its worker), or a client of an existing cluster at ``--scheduler``.
:func:`run_sweep` submits :func:`~eiex.sim.explore.evaluate.evaluate_point` for every point,
telling the workers which cache keys the client already holds, and collects the results in the
order they finish:

- a result is stored in the :class:`~eiex.sim.explore.cache.ResultCache` the moment it arrives;
- a task whose worker died (killed, out of memory) is retried once by the scheduler (the local
  cluster is started with ``distributed.scheduler.allowed-failures`` = 1; a remote scheduler uses
  its own setting), a task that raised is retried once (``retries=1``); after that the point is
  recorded as failed with the error, and the sweep goes on;
- a progress bar shows points done, running and failed, and the time left.
"""

from __future__ import annotations

import contextlib
import logging
import os
from typing import Callable, Iterator

from eiex.errors import EiexError
from eiex.sim.explore.cache import ResultCache
from eiex.sim.explore.evaluate import Point, evaluate_point


@contextlib.contextmanager
def dask_client(scheduler: str | None = None, workers: int | None = None) -> Iterator:
    """A ``distributed.Client``: of the cluster at ``scheduler``, or of a new ``LocalCluster`` of
    ``workers`` processes (default: the cores), closed on exit."""
    import dask
    from distributed import Client, LocalCluster

    if scheduler is not None:
        if workers is not None:
            raise EiexError("--workers sizes a local cluster; with --scheduler the cluster has its own workers")
        try:
            client = Client(scheduler, timeout="10s")
        except (OSError, TimeoutError) as e:
            raise EiexError(f"cannot reach the Dask scheduler at {scheduler}: {e}") from None
        with client:
            yield client
        return
    workers = (os.cpu_count() or 1) if workers is None else workers
    if workers < 1:
        raise EiexError(f"--workers must be at least 1, not {workers}")
    with dask.config.set({"distributed.scheduler.allowed-failures": 1}):
        # memory_limit=0: the builds' memory is in the tools' child processes, which Dask does not see;
        # the dashboard on a free port, so that sweeps can run side by side
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0",
                               memory_limit=0, silence_logs=logging.CRITICAL)
    with cluster, Client(cluster) as client:
        yield client


def cluster_name(client) -> str:
    """``LocalCluster`` or the scheduler's address, for the report."""
    cluster = getattr(client, "cluster", None)
    return type(cluster).__name__ if cluster is not None else client.scheduler.address


def worker_count(client) -> int:
    return len(client.scheduler_info()["workers"])


def run_sweep(client, points: list[Point], image, part, *, inputs=None, speed: int | None = None,
              freq: float = 100.0, cache: ResultCache | None = None, task: Callable = evaluate_point,
              progress: bool = True) -> list[dict]:
    """Run every point on ``client``'s cluster; the results (see
    :func:`~eiex.sim.explore.evaluate.evaluate_point`) in the order of ``points``, each with
    ``params``, ``cached`` and, for a point that failed, ``status`` ``failed`` and ``error``.

    ``task`` is what each point runs (:func:`evaluate_point`; tests put a crashing one here).
    """
    from distributed import as_completed
    from tqdm import tqdm

    cache = cache if cache is not None else ResultCache()
    known = cache.keys()
    # the image goes into every task rather than scattered once: scattered data dies with the workers
    # holding it, a task's own arguments are sent again when it is retried
    futures = {client.submit(task, point, image, inputs, part, speed, freq, known, retries=1, pure=False,
                             key=f"explore-{point.id}-{os.urandom(4).hex()}"): point for point in points}
    results: dict[str, dict] = {}
    failed = 0
    bar = tqdm(total=len(points), unit="point", desc="explore", disable=not progress, dynamic_ncols=True)
    with bar:
        for future in as_completed(futures):
            point = futures[future]
            result = _collect(future, point, cache)
            results[point.id] = result
            failed += result["status"] == "failed"
            running = sum(len(tasks) for tasks in client.processing().values())
            bar.set_postfix_str(f"done {len(results)}, running {running}, failed {failed}", refresh=False)
            bar.update()
    return [results[point.id] for point in points]


def _collect(future, point: Point, cache: ResultCache) -> dict:
    """The result of one finished task: from the cache when the worker found its key there,
    stored in the cache when new; a task that failed after its retry becomes a failed result."""
    from distributed import KilledWorker

    base = {"id": point.id, "engine": point.engine, "params": point.params}
    try:
        result = future.result()
    except KilledWorker as e:
        return {**base, "status": "failed", "cached": False,
                "error": f"its worker died on both tries (killed or out of memory): {e}"}
    except Exception as e:  # noqa: BLE001 - anything a worker raised is this point's failure, not the sweep's
        return {**base, "status": "failed", "cached": False, "error": f"{type(e).__name__}: {e}"}
    if result["key"] is None:
        return {**result, **base}
    if result.get("cached"):
        stored = cache.get(result["key"])
        if stored is not None:  # the build is the same; the cycle model ran on this sweep's inputs
            fresh = {name: result[name] for name in ("cycles", "ideal_cycles", "cycles_what")}
            return {**stored, **fresh, **base, "cached": True}
        result = {**result, "status": "failed", "error": "its cached result vanished; run again to rebuild it"}
    result = {**result, **base}
    cache.put(result["key"], result)
    return result
