"""Running the chunks of one dequantize side by side, one core each.

Dequantizing is a sequence of eager torch ops over chunks of a few MiB.  torch's own
intra-op threads do not pay off at that size: every op opens an OpenMP parallel region,
which wakes the sleeping OpenMP workers (OMP_WAIT_POLICY=PASSIVE, as on a shared machine)
and costs 30-130 us on the 2-core EPYC of BENCHMARKS.md, about what the op itself takes.
So a call that may use N threads runs every op on one core and spreads its chunks over N
threads of its own instead: the calling thread, its torch intra-op thread count set to 1
for the call, and N - 1 helper threads (started on first use, each with one intra-op
thread), every one taking the next chunk when done with one.  The caller starts at once and
the helpers join as they wake (a wake-up costs 50-200 us on a virtual machine); the caller
waits only for chunks a helper has started, so a call is never slower than on the caller
alone by more than about a chunk.  Python holds the GIL only to issue each op and torch
releases it while the op runs, so the threads overlap well as long as the ops are long
(chunks of a few hundred thousand weights).

This needs torch's OpenMP backend, where the intra-op thread count is per thread; with
another backend every call runs on the calling thread as it is.  Side effects: torch's
``set_num_threads`` also sets the default count of threads that have not run a parallel op
yet, and clears oneDNN's primitive cache.  The caller's count is restored when the call
ends, which puts that default back; a thread that ran its first parallel op during a call
(or while helpers start, once per process) would keep one intra-op thread.
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch

# Calls of at most this many weights run on the calling thread as it is: all their ops are
# under torch's grain size (32768 elements; a Q8_0 chunk converts 34 bytes per 32 weights),
# so they run serially anyway.
SERIAL_MAX_WEIGHTS = 1 << 14
PER_THREAD_COUNTS = torch.__config__.parallel_info().rstrip().endswith("OpenMP")


def thread_count(weights: int) -> int:
    """How many threads a call of ``weights`` weights runs on: the caller's torch intra-op
    thread count (the cores it lets torch use); 1 (the caller, as it is) for small calls or
    a parallel backend other than OpenMP."""
    if weights <= SERIAL_MAX_WEIGHTS or not PER_THREAD_COUNTS:
        return 1
    return torch.get_num_threads()


@contextmanager
def _one_intraop_thread() -> Iterator[None]:
    """The calling thread's torch ops run on one core within the block."""
    saved = torch.get_num_threads()
    if saved == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(saved)


class _Job:
    """Tasks shared by the threads of one call: each takes the next untaken task until none
    is left or one failed.  ``finished`` is set once no task will be taken any more and none
    is running."""

    def __init__(self, tasks: list[Callable[[], None] | None]) -> None:
        # each entry is dropped once taken: what a task holds (views of the caller's
        # tensors) is freed by the thread that ran it while the others work, instead of
        # all at once by the caller after the last chunk
        self._tasks = tasks
        self._next = 0
        self._running = 0
        self._closed = False
        self._lock = threading.Lock()
        self.finished = threading.Event()
        self.error: Exception | None = None

    def _take(self) -> int | None:
        with self._lock:
            if self._closed or self._next == len(self._tasks):
                self._closed = True
                if self._running == 0:
                    self.finished.set()
                return None
            self._running += 1
            self._next += 1
            return self._next - 1

    def _done(self, error: Exception | None) -> None:
        with self._lock:
            self._running -= 1
            if error is not None:
                self._closed = True  # the others take no new task
                if self.error is None:
                    self.error = error
            if self._closed and self._running == 0:
                self.finished.set()

    def work(self) -> None:
        while (index := self._take()) is not None:
            error = None
            task, self._tasks[index] = self._tasks[index], None
            try:
                task()
            except Exception as failure:  # noqa: BLE001 -- re-raised by the caller, whatever it is
                error = failure
            finally:
                self._done(error)


class _Helpers:
    """Daemon threads, each with its own wake-up queue and one torch intra-op thread."""

    def __init__(self) -> None:
        self._inboxes: list[queue.SimpleQueue] = []
        self._lock = threading.Lock()

    def inboxes(self, count: int) -> list[queue.SimpleQueue]:
        """The wake-up queues of ``count`` helpers, started if need be."""
        with self._lock:
            missing = count - len(self._inboxes)
            if missing > 0:
                started = threading.Barrier(missing + 1)
                for _ in range(missing):
                    inbox: queue.SimpleQueue = queue.SimpleQueue()
                    thread = threading.Thread(
                        target=_serve, args=(inbox, started), name="ggufc-dequantize", daemon=True
                    )
                    thread.start()
                    self._inboxes.append(inbox)
                started.wait()
                # the helpers' set_num_threads(1) also changed torch's default for threads
                # that have not initialized theirs yet: put it back to this thread's count
                torch.set_num_threads(torch.get_num_threads())
            return self._inboxes[:count]


def _serve(inbox: queue.SimpleQueue, started: threading.Barrier) -> None:
    # initialize this thread's count first: torch would otherwise do it lazily at the first
    # parallel op, from the process default, undoing the line below
    torch.get_num_threads()
    torch.set_num_threads(1)
    started.wait()
    while True:
        inbox.get().work()


_helpers: _Helpers | None = None
_helpers_lock = threading.Lock()


def _forget_helpers() -> None:
    # a forked child has none of the parent's threads
    global _helpers
    _helpers = None


if hasattr(os, "register_at_fork"):  # POSIX only; elsewhere there is no fork to survive
    os.register_at_fork(after_in_child=_forget_helpers)


def run(tasks: list[Callable[[], None] | None], threads: int) -> None:
    """Run ``tasks`` to completion on ``threads`` threads (see the module docstring): with 1,
    one after another on the calling thread as it is.  Each entry of the list is set to None
    once taken, so that what it holds is freed as soon as it has run.  The first exception
    of a task is raised here, once no task is running any more (tasks write into the
    caller's tensors)."""
    global _helpers
    if threads <= 1:
        for index, task in enumerate(tasks):
            tasks[index] = None
            task()
            del task
        return
    job = _Job(tasks)
    helpers = min(threads, len(tasks)) - 1
    if helpers > 0:
        with _helpers_lock:
            if _helpers is None:
                _helpers = _Helpers()
            pool = _helpers
        # one queue per helper, so that every helper is woken at once
        for inbox in pool.inboxes(helpers):
            inbox.put(job)
    with _one_intraop_thread():
        job.work()
    job.finished.wait()
    if job.error is not None:
        raise job.error
