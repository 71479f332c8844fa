"""Dequantizing on several threads (the caller and helpers, see compiler.formats.parallel):
same bits as gguf-py for every chunk layout and output dtype, the caller's torch thread
count left as it was, a failing chunk raised once nothing runs any more, a forked child
starting helpers of its own."""

from __future__ import annotations

import functools
import os
import threading
import time

import pytest
import torch
from format_cases import ALL_FORMATS, assert_bit_identical, generator, gguf_dequantize

from compiler import formats
from compiler.formats import parallel

pytestmark = pytest.mark.skipif(
    not parallel.PER_THREAD_COUNTS, reason="needs torch's OpenMP backend (per-thread counts)"
)
THREADS = 3  # the caller and two helpers
CHILD_TIMEOUT_S = 120


@pytest.fixture
def many_chunks(monkeypatch):
    """Chunks of 4 blocks (the alignment), spread over THREADS threads whatever torch's own
    count, whatever the size of the call."""
    monkeypatch.setattr(formats, "CHUNK_WEIGHTS", 1)
    monkeypatch.setattr(formats, "MIN_CHUNK_WEIGHTS", 1)
    monkeypatch.setattr(parallel, "thread_count", lambda weights: THREADS)


def _ragged_blocks(fmt: str, seed: int) -> torch.Tensor:
    """3 rows of 5 (K-quants) or 37 (legacy) blocks: a block count that is not a multiple
    of 4, so the last chunk is short."""
    spec = formats.get_format(fmt)
    per_row = 5 if spec.block_weights == 256 else 37
    return formats.random_blocks(fmt, 3, per_row * spec.block_weights, generator=generator(seed))


@pytest.mark.parametrize("fmt", ALL_FORMATS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_threaded_chunks_bit_identical_to_gguf(fmt, dtype, seed, many_chunks):
    blocks = _ragged_blocks(fmt, seed)
    reference = gguf_dequantize(blocks, fmt)
    ours = formats.dequantize(blocks, fmt, dtype=dtype)
    if dtype == torch.float32:
        assert_bit_identical(ours, reference, f"{fmt} seed={seed}")
    else:
        assert torch.equal(ours, reference.to(dtype)), f"{fmt} {dtype} seed={seed}"


@pytest.mark.parametrize("fmt", ALL_FORMATS)
@pytest.mark.parametrize("offset", [1, 2])
def test_unaligned_blocks_on_threads(fmt, offset, seed, many_chunks):
    # blocks starting 1 or 2 bytes into their storage: no chunk can be read as words in
    # place, and at an odd offset not even its f16 scales
    blocks = _ragged_blocks(fmt, seed)
    storage = torch.empty(blocks.numel() + offset, dtype=torch.uint8)
    shifted = storage[offset:].view(blocks.shape)
    shifted.copy_(blocks)
    assert_bit_identical(
        formats.dequantize(shifted, fmt),
        gguf_dequantize(blocks, fmt),
        f"{fmt} offset={offset} seed={seed}",
    )


def test_caller_thread_count_is_restored(seed, many_chunks):
    blocks = _ragged_blocks("Q4_K", seed)
    before = torch.get_num_threads()
    formats.dequantize(blocks, "Q4_K")
    assert torch.get_num_threads() == before
    # threads that start afterwards get the process default, which the call must leave
    seen = []
    thread = threading.Thread(target=lambda: seen.append(torch.get_num_threads()))
    thread.start()
    thread.join()
    assert seen == [before]


def test_concurrent_callers_share_the_helpers(seed, many_chunks):
    cases = {fmt: _ragged_blocks(fmt, seed + i) for i, fmt in enumerate(ALL_FORMATS)}
    results: dict[str, torch.Tensor] = {}

    def call(fmt: str) -> None:
        for _ in range(5):
            results[fmt] = formats.dequantize(cases[fmt], fmt)

    threads = [threading.Thread(target=call, args=(fmt,)) for fmt in cases]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for fmt, blocks in cases.items():
        assert_bit_identical(results[fmt], gguf_dequantize(blocks, fmt), f"{fmt} seed={seed}")


def test_a_failing_task_is_raised_once_none_runs():
    done: list[int] = []
    failing = 5

    def task(index: int) -> None:
        if index == failing:
            raise ValueError(f"task {index} failed")
        time.sleep(0.001)
        done.append(index)

    tasks = [functools.partial(task, index) for index in range(40)]
    with pytest.raises(ValueError, match="task 5 failed"):
        parallel.run(tasks, THREADS)
    finished = list(done)
    time.sleep(0.05)
    assert done == finished, "a task ran after run() returned"
    # tasks are taken in order: when task 5 fails, the other threads hold at most the next
    # ones, and none is taken after that
    assert max(finished) <= failing + THREADS - 1, finished


def _count(counts: list[int], index: int) -> None:
    counts[index] += 1


def test_tasks_run_once_each_on_any_thread_count():
    for threads in (1, 2, THREADS, 8):
        counts = [0] * 25
        parallel.run([functools.partial(_count, counts, index) for index in range(25)], threads)
        assert counts == [1] * 25, threads


class _Held:
    """Stands for the views a chunk task holds; counts how many are alive."""

    alive = 0

    def __init__(self) -> None:
        _Held.alive += 1

    def __del__(self) -> None:
        _Held.alive -= 1


def _note_alive(alive_seen: list[int], start: int, index: int, held: _Held) -> None:
    alive_seen[index] = _Held.alive - start


def test_each_task_is_freed_once_taken():
    # what a task holds goes with it once it has run, not when run() returns: the last task
    # sees every earlier one's object gone whatever the thread count
    for threads in (1, THREADS):
        start = _Held.alive
        alive_seen = [-1] * 9
        tasks = [
            functools.partial(_note_alive, alive_seen, start, index, _Held()) for index in range(9)
        ]
        parallel.run(tasks, threads)
        assert tasks == [None] * 9, threads
        assert _Held.alive == start, threads
        if threads == 1:  # in order on one thread: task i sees 9 - i objects left, its own too
            assert alive_seen == [9 - index for index in range(9)]


def _record_thread(threads_seen: set[int]) -> None:
    time.sleep(0.01)  # long enough for the helpers to wake and take tasks
    threads_seen.add(threading.get_ident())


def _child_dequantizes_with_helpers(blocks: torch.Tensor, expected: torch.Tensor) -> int:
    """Exit code of the forked child: 0 when its dequantize is right and its helpers run."""
    if not torch.equal(formats.dequantize(blocks, "Q6_K"), expected):
        return 2
    threads_seen: set[int] = set()
    parallel.run([functools.partial(_record_thread, threads_seen) for _ in range(12)], THREADS)
    return 0 if len(threads_seen) > 1 else 3


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_forked_child_starts_helpers_of_its_own(seed, many_chunks):
    blocks = _ragged_blocks("Q6_K", seed)
    expected = formats.dequantize(blocks, "Q6_K")  # the parent's helpers are running now
    pid = os.fork()
    if pid == 0:  # the child: only this thread exists, the parent's helpers do not
        code = 1
        try:
            code = _child_dequantizes_with_helpers(blocks, expected)
        finally:
            os._exit(code)
    deadline = time.monotonic() + CHILD_TIMEOUT_S
    while True:
        finished, status = os.waitpid(pid, os.WNOHANG)
        if finished:
            break
        if time.monotonic() > deadline:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            pytest.fail(f"forked child hung dequantizing (seed={seed})")
        time.sleep(0.01)
    # 2: wrong values, 3: no helper ran (the parent's, which do not exist in the child)
    assert os.waitstatus_to_exitcode(status) == 0, f"seed={seed}"
