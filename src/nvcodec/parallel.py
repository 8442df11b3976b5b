"""Running segment jobs elsewhere: worker processes on this machine (`--jobs N`) or the workers of
a Dask cluster (`--cluster ADDRESS`), results handed back in submission order.

A job is `fn(task)`, with `fn` a module-level function (workers import it); it gets its weights
from `worker_weights`, which loads them once per worker process (a cluster's workers, which may
not see our files, get the bytes when they start).
At most `slots + 1` tasks are out at a time, so a long video is never held in memory whole. A job
whose worker dies is run again (ProcessRunner._restart and Dask's own rescheduling say how often);
Ctrl-C or an error stops every worker.
"""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing
import os
import signal
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Protocol

from nvcodec.errors import InputError, NvcError
from nvcodec.weights import Weights, load_weights, weights_from_bytes

RETRIES = 2
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters
CONNECT_SECONDS = 10

_loaded: dict[bytes, Weights] = {}  # in a worker: each weights file is loaded once
_threads: int | None = None  # in a worker: torch threads per task (None: torch's default)


def use_task_threads() -> None:
    """In a task, on the thread that runs it: the torch threads the runner chose for this worker
    process (OpenMP's thread count is per thread: setting it on another thread does not reach
    a Dask worker's task threads, and 2 workers x 2 threads on 2 cores ran at half speed)."""
    if _threads is not None:
        import torch

        torch.set_num_threads(_threads)


def worker_weights(path: str, sha256: bytes, data: bytes | None = None) -> Weights:
    """The weights a job names, loaded once per worker process (from `data` when given)."""
    if sha256 not in _loaded:
        weights = weights_from_bytes(data, path) if data is not None else load_weights(path)
        if weights.sha256 != sha256:
            raise NvcError(f"{path}: the weights changed while coding")
        _loaded[sha256] = weights
    return _loaded[sha256]


class WorkerLost(NvcError):
    """A worker died on the same job more than RETRIES times."""


class Runner(Protocol):
    slots: int

    def map_ordered(self, fn: Callable[..., Any], tasks: Iterable[Any]) -> Iterator[Any]: ...

    def close(self, abort: bool) -> None: ...


@contextlib.contextmanager
def _sigint_blocked() -> Iterator[None]:
    """Hold back Ctrl-C while worker processes may be started: they inherit the blocked signal, so
    one that arrives before they ignore it cannot interrupt their start-up; the parent gets it
    right after."""
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


def _quiet_worker(threads: int) -> None:
    """In each worker process: leave Ctrl-C to the parent (which stops the workers) and share the
    cores."""
    global _threads
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    _threads = threads


class ProcessRunner:
    """`jobs` worker processes on this machine."""

    def __init__(self, jobs: int) -> None:
        self.slots = jobs
        self._threads = max(1, (os.cpu_count() or 1) // jobs)
        self._pool = self._start()

    def _start(self) -> ProcessPoolExecutor:
        context = multiprocessing.get_context("spawn")  # torch's threads do not survive a fork
        return ProcessPoolExecutor(self.slots, context, initializer=_quiet_worker, initargs=(self._threads,))

    def map_ordered(self, fn: Callable[..., Any], tasks: Iterable[Any]) -> Iterator[Any]:
        pending: deque[list[Any]] = deque()  # [task, future, tries]
        source = iter(tasks)
        while True:
            try:
                while len(pending) <= self.slots and (task := next(source, None)) is not None:
                    pending.append([task, None, 0])
                    pending[-1][1] = self._submit(fn, task)
                if not pending:
                    return
                result = pending[0][1].result()
            except BrokenProcessPool:
                self._restart(fn, pending)
                continue
            pending.popleft()
            yield result

    def _restart(self, fn: Callable[..., Any], pending: deque[list[Any]]) -> None:
        """A worker died and took the pool with it, and every unfinished job. Which job killed it
        is unknown: each of those that may have been running (the first `slots` unfinished) counts
        a try, and one gives up after RETRIES + slots tries (so a job that kills its worker every
        time is tried at least RETRIES times, however often its neighbours die). A new pool then
        takes the unfinished jobs again."""
        unfinished = [e for e in pending if not (e[1] and e[1].done() and e[1].exception() is None)]
        for entry in unfinished[: self.slots]:
            entry[2] += 1
            if entry[2] > RETRIES + self.slots:
                raise WorkerLost(f"worker processes died {entry[2]} times while coding the same segment")
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._pool = self._start()
        for entry in unfinished:
            entry[1] = self._submit(fn, entry[0])

    def _submit(self, fn: Callable[..., Any], task: Any) -> Future:
        with _sigint_blocked():  # the pool starts its processes here
            return self._pool.submit(fn, task)

    def close(self, abort: bool) -> None:
        if abort:
            processes = list(getattr(self._pool, "_processes", {}).values())  # no public way in 3.11
            for process in processes:
                process.terminate()
            self._pool.shutdown(wait=False, cancel_futures=True)
            for process in processes:
                process.join(5)
        else:
            self._pool.shutdown(wait=True)


class DaskRunner:
    """The workers of a running Dask cluster. Each worker, and each that joins or replaces one
    later, loads the weights once, from bytes sent with a worker plugin (no shared files needed)."""

    def __init__(self, address: str, weights: Weights) -> None:
        try:
            from distributed import Client, KilledWorker
        except ImportError:
            raise InputError("--cluster needs Dask: pip install 'nvcodec[cluster]'") from None
        try:
            self.client = Client(address, timeout=f"{CONNECT_SECONDS}s", set_as_default=False)
        except (OSError, TimeoutError) as err:
            raise InputError(f"--cluster {address}: no Dask scheduler answered ({err})") from None
        self._killed = KilledWorker
        self._pending: deque[Future] = deque()
        try:
            self.slots = max(1, sum(self.client.nthreads().values()))
            with open(weights.path, "rb") as file:
                self.client.register_plugin(_weights_plugin(weights.path, weights.sha256, file.read()))
        except BaseException:
            self.client.close()
            raise

    def map_ordered(self, fn: Callable[..., Any], tasks: Iterable[Any]) -> Iterator[Any]:
        source = iter(tasks)
        while True:
            while len(self._pending) <= self.slots and (task := next(source, None)) is not None:
                self._pending.append(self.client.submit(fn, task, pure=False, retries=RETRIES))
            if not self._pending:
                return
            try:
                result = self._pending[0].result()
            except self._killed as err:
                raise WorkerLost(
                    f"the cluster lost its workers on the same segment too often ({err})"
                ) from None
            yield result
            self._pending.popleft()

    def close(self, abort: bool) -> None:
        if abort and self._pending:
            self.client.cancel(list(self._pending), force=True)
        self.client.close()


def _start_cluster_worker(path: str, sha256: bytes, data: bytes) -> None:
    """In a cluster worker (a module-level function, so that its globals are this module's even
    when the plugin that calls it travels by value): one torch thread per task, since a cluster
    is sized in worker threads, and the weights loaded."""
    global _threads
    _threads = 1
    _undo_malloc_trimming()
    worker_weights(path, sha256, data)


def _undo_malloc_trimming() -> None:
    """Dask's nanny starts workers with MALLOC_TRIM_THRESHOLD_=65536, which also pins glibc's mmap
    threshold: every array above 128 kB is then mapped and unmapped afresh, and the encoder's
    numpy work ran 13x slower (a cluster encode at half the speed of --jobs). Put glibc's
    thresholds back where its adaptive defaults end up (no-op where there is no glibc)."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(M_MMAP_THRESHOLD, 32 << 20)
        libc.mallopt(M_TRIM_THRESHOLD, 64 << 20)
    except (OSError, AttributeError):
        pass


def _weights_plugin(path: str, sha256: bytes, data: bytes) -> Any:
    """A Dask worker plugin that loads the weights into the worker's cache when it starts, and
    gives each task one torch thread."""
    from distributed.diagnostics.plugin import WorkerPlugin

    class WeightsPlugin(WorkerPlugin):
        name = f"nvcodec-weights-{sha256.hex()[:16]}"

        def setup(self, worker: Any) -> None:
            _start_cluster_worker(path, sha256, data)

    return WeightsPlugin()


def check_options(jobs: int, cluster: str | None) -> None:
    """Refuse options that ask for two runners (before anything is opened)."""
    if jobs > 1 and cluster is not None:
        raise InputError("--jobs and --cluster exclude each other")


def make_runner(jobs: int, cluster: str | None, weights: Weights) -> Runner | None:
    """The runner the options ask for; None to code in this process."""
    if cluster is not None:
        return DaskRunner(cluster, weights)
    if jobs > 1:
        return ProcessRunner(jobs)
    return None
