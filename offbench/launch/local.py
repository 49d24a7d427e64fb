"""The local launcher: seed groups on this machine, in this process (one worker) or in a pool of
spawned worker processes, each holding its share of the free CPU cores."""

from __future__ import annotations

import atexit
import multiprocessing as mp
import os
import queue
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any

import torch

from offbench.cores import CoreShare, free_cores
from offbench.errors import OffbenchError
from offbench.launch.base import Sink
from offbench.launch.events import Reporter, event_of, report_start
from offbench.train import RunPlan, execute_seeds


_events: Any = None  # in a worker: the queue that carries progress events to the parent


_share: CoreShare | None = None  # in a worker: its share of the cores, held for the worker's life


def _worker_init(threads: int | None, events: Any, gpus: Any = None) -> None:
    global _events, _share
    if gpus is not None:  # one GPU per worker: set before anything in this process touches CUDA
        os.environ["CUDA_VISIBLE_DEVICES"] = gpus.get()
    _events = events
    _share = CoreShare(threads).__enter__()
    atexit.register(_share.__exit__)
    parent = os.getppid()

    def exit_with_parent() -> None:  # a worker never outlives the command that started it
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=exit_with_parent, daemon=True).start()


def _worker(plans: list[RunPlan], device: torch.device) -> list[dict[str, Any]]:
    def progress(i: int, step: int, total: int, score: float | None) -> None:
        if _share is not None:
            _share.update()
        _events.put((event_of(plans[i], step), plans[i].label, step, total, score))

    return execute_seeds(plans, device=device, progress=progress)


def default_workers(n_runs: int, device: torch.device, free: int, gpus: int = 0) -> int:
    """CPU: one process per ``free`` core (each single-threaded); one GPU: a few processes share
    it; several (``gpus``): one process per GPU."""
    if device.type == "cpu":
        return max(1, min(n_runs, free))
    return max(1, min(n_runs, gpus if gpus > 1 else 4))


def visible_gpus(env: str | None = None, count: int | None = None) -> list[str]:
    """The ids of the GPUs this process may use, as ``CUDA_VISIBLE_DEVICES`` names them (that
    variable's entries where it is set, else 0..count-1)."""
    env = os.environ.get("CUDA_VISIBLE_DEVICES") if env is None else env
    count = (torch.cuda.device_count() if torch.cuda.is_available() else 0) if count is None else count
    if env is not None and env.strip():
        return [g.strip() for g in env.split(",") if g.strip()][:count]
    return [str(i) for i in range(count)]


class LocalLauncher:
    """``workers`` processes on this machine (default: one per free core on a CPU, 4 sharing one
    GPU, one per GPU where several are visible, each seeing only its own), each with ``threads``
    torch threads (default: its share of the free cores, re-measured while it runs); one worker
    runs in this process."""

    def __init__(self, workers: int | None = None, threads: int | None = None) -> None:
        self.workers, self.threads = workers, threads
        self.gpus: list[str] = []

    def parts(self, runs: int, device: torch.device) -> int:
        """CPU: one group per worker; several GPUs: one per GPU (each group one model on its GPU);
        one GPU: every config's seeds as one model."""
        self.gpus = visible_gpus() if device.type == "cuda" and not self.workers else []
        self.n = self.workers or default_workers(runs, device, free_cores(), len(self.gpus))
        if len(self.gpus) > 1:
            return min(self.n, len(self.gpus))
        return self.n if device.type == "cpu" else 1

    def run(self, groups: list[list[RunPlan]], device: torch.device, sink: Sink) -> None:
        n = min(self.n, len(groups))
        if n == 1:
            with CoreShare(self.threads) as share:
                _run_in_process(groups, device, sink, share)
            return
        _run_in_pool(groups, device, sink, n, self.threads, self.gpus[:n] if len(self.gpus) > 1 else None)


def _run_in_process(groups: list[list[RunPlan]], device: torch.device, sink: Sink, share: CoreShare) -> None:
    """One worker: the groups one after another in this process (no start-up cost, works anywhere)."""
    for group in groups:
        report_start(group, sink.report)

        def progress(i: int, step: int, total: int, score: float | None, group: list[RunPlan] = group) -> None:
            share.update()
            sink.report(event_of(group[i], step), group[i].label, step, total, score)

        try:
            summaries = execute_seeds(group, device, progress)
        except OffbenchError as e:
            sink.failed(group, str(e))
            continue
        sink.finished(group, summaries)


def _run_in_pool(groups: list[list[RunPlan]], device: torch.device, sink: Sink, n: int, threads: int | None,
                 gpus: list[str] | None = None) -> None:
    """``n`` spawned worker processes, one group at a time each (with ``gpus``: worker ``i`` sees
    only GPU ``gpus[i]``); progress comes back on a queue."""
    ctx = mp.get_context("spawn")
    events = ctx.Queue()
    gpu_ids = None
    if gpus:
        gpu_ids = ctx.Queue()
        for gpu in gpus:
            gpu_ids.put(gpu)
    with ProcessPoolExecutor(n, mp_context=ctx, initializer=_worker_init,
                             initargs=(threads, events, gpu_ids)) as pool:
        futures: dict[Future, list[RunPlan]] = {}
        for group in groups:
            futures[pool.submit(_worker, group, device)] = group
            report_start(group, sink.report)
        pending = set(futures)
        try:
            while pending:
                done, pending = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
                _drain(events, sink.report)
                for fut in done:
                    group = futures[fut]
                    try:
                        summaries = fut.result()
                    except BrokenProcessPool:  # a worker died: killed, out of memory, or never started
                        sink.failed(group, "a worker process stopped before its runs finished; 'offbench run' resumes "
                                           "them (from a script, call run_plans under if __name__ == '__main__': "
                                           "workers import the script again)")
                        continue
                    except Exception as e:  # noqa: BLE001  (a failed run must not stop the others)
                        sink.failed(group, f"{type(e).__name__}: {e}")
                        continue
                    sink.finished(group, summaries)
        except KeyboardInterrupt:
            workers_ = list((getattr(pool, "_processes", None) or {}).values())
            pool.shutdown(wait=False, cancel_futures=True)
            for proc in workers_:  # checkpoints are atomic, so stopping mid-step loses nothing
                proc.terminate()
            raise


def _drain(events: Any, report: Reporter) -> None:
    deadline = time.monotonic() + 0.1
    while time.monotonic() < deadline:
        try:
            event = events.get_nowait()
        except queue.Empty:
            return
        report(*event)
