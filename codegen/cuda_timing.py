"""How ggufc times a CUDA kernel: one method for `ggufc tune` and the benchmarks/cuda_*.py.

* Device events around a batch of ``LAUNCHES_PER_BATCH`` launches queued behind a device-side
  sleep (``torch.cuda._sleep``), so the host's per-launch cost (Python, argument packing)
  overlaps the sleep instead of showing between kernels.
* ``WARMUP_BATCHES`` batches first (NVRTC compile, clocks, TLB), then the median of
  ``BATCHES`` batches: one slow batch (another process, a clock change) does not move it.
* The caller rotates ``copies`` copies of its inputs (``launch(i)`` uses copy ``i``), as many as
  `copies_for` says (`rotated_copies` makes them), so consecutive launches read different memory and the 50 MB L2 of an
  H100 cannot serve the weights from the previous launch.  Inputs should be random and
  non-zero: zero weights and activations flatter some decoders and power states.

Needs a CUDA device; imports torch only.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable

import torch

ROTATE_BYTES = 256 << 20  # > 5x the H100's 50 MB L2
MAX_COPIES = 16
LAUNCHES_PER_BATCH = 40
BATCHES = 7
WARMUP_BATCHES = 2
SLEEP_CYCLES = 20_000_000  # ~10 ms of device time: the host queues the batch meanwhile
COPY_BYTES = 1 << 30  # the device copy that sets the memory floor


def copies_for(nbytes: int) -> int:
    """Copies of an input of `nbytes` bytes to rotate over (at least 2, at most MAX_COPIES),
    together at least ROTATE_BYTES where MAX_COPIES allows."""
    return max(2, min(MAX_COPIES, -(-ROTATE_BYTES // max(nbytes, 1))))


def rotated_copies(tensor: torch.Tensor) -> list[torch.Tensor]:
    """`tensor` and clones of it, `copies_for` its size in all."""
    nbytes = tensor.numel() * tensor.element_size()
    return [tensor] + [tensor.clone() for _ in range(copies_for(nbytes) - 1)]


def copy_bandwidth() -> float:
    """Device-to-device copy of COPY_BYTES, bytes read + written per second."""
    src = torch.randint(0, 255, (COPY_BYTES,), dtype=torch.uint8, device="cuda")
    dst = torch.empty_like(src)
    return 2 * COPY_BYTES / (time_launches(lambda i: dst.copy_(src), 1) * 1e-6)


def time_launches(launch: Callable[[int], object], copies: int) -> float:
    """Median microseconds per launch; ``launch(i)`` runs on input copy ``i``."""
    times = []
    for batch in range(WARMUP_BATCHES + BATCHES):
        start = torch.cuda.Event(enable_timing=True)
        end = torch.cuda.Event(enable_timing=True)
        torch.cuda._sleep(SLEEP_CYCLES)
        start.record()
        for i in range(LAUNCHES_PER_BATCH):
            launch(i % copies)
        end.record()
        torch.cuda.synchronize()
        if batch >= WARMUP_BATCHES:
            times.append(start.elapsed_time(end) * 1000.0 / LAUNCHES_PER_BATCH)
    return statistics.median(times)


__all__ = ["copies_for", "copy_bandwidth", "rotated_copies", "time_launches"]
