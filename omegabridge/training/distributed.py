"""PyTorch's own distributed engine, as omegabridge uses it: who am I, how many are we, wait for all.

``torchrun`` starts one process per worker and tells each its ``RANK``, ``WORLD_SIZE``
and ``LOCAL_RANK`` through the environment; ``initialize()`` joins the process group
it describes (NCCL for CUDA training, gloo otherwise). Without torchrun (or with one
worker) nothing is initialised and every helper answers for a single process, so the
same code runs as a plain loop.

Example:
    >>> from omegabridge.training import distributed
    >>> distributed.rank(), distributed.world_size(), distributed.is_main()
    (0, 1, True)
    >>> distributed.contiguous_range(10, rank=1, world_size=3)   # items 4, 5, 6 of 0..9
    range(4, 7)
"""

from __future__ import annotations

import datetime
import os

import torch
import torch.distributed as dist

__all__ = [
    "initialize",
    "launched_by_torchrun",
    "is_distributed",
    "rank",
    "world_size",
    "local_rank",
    "is_main",
    "barrier",
    "contiguous_range",
    "device_for_rank",
]


def launched_by_torchrun() -> bool:
    """True when the environment describes more than one worker (``torchrun --nproc_per_node K``, K > 1)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def initialize(backend: str | None = None, timeout_minutes: float = 30.0) -> bool:
    """Join torchrun's process group when there is one; returns whether the run is distributed.

    ``backend`` defaults to ``"nccl"`` when CUDA is available and ``"gloo"`` otherwise.
    Calling it again, or in a single process, is harmless.
    """
    if dist.is_available() and dist.is_initialized():
        return True
    if not launched_by_torchrun():
        return False
    if not dist.is_available():
        raise RuntimeError("WORLD_SIZE > 1, but this torch build has no torch.distributed")
    if backend is None:
        backend = "nccl" if torch.cuda.is_available() else "gloo"
    dist.init_process_group(backend=backend, timeout=datetime.timedelta(minutes=timeout_minutes))
    return True


def is_distributed() -> bool:
    """True inside an initialised process group of more than one worker."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    """This worker's rank (0 in a single process)."""
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    """Number of workers (1 in a single process)."""
    return dist.get_world_size() if is_distributed() else 1


def local_rank() -> int:
    """This worker's index on its node (torchrun's ``LOCAL_RANK``; 0 in a single process)."""
    return int(os.environ.get("LOCAL_RANK", "0")) if is_distributed() else 0


def is_main() -> bool:
    """True on rank 0, the worker that prints and writes shared files."""
    return rank() == 0


def barrier() -> None:
    """Wait until every worker gets here (nothing in a single process)."""
    if is_distributed():
        dist.barrier()


def contiguous_range(count: int, rank: int, world_size: int) -> range:
    """Worker ``rank``'s share of items 0..count-1: contiguous, in order, sizes differing by at most 1.

    >>> [list(contiguous_range(5, r, 2)) for r in range(2)]
    [[0, 1, 2], [3, 4]]
    """
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"rank must be in [0, world_size), got rank {rank} of {world_size}")
    base, extra = divmod(count, world_size)
    start = rank * base + min(rank, extra)
    return range(start, start + base + (1 if rank < extra else 0))


def device_for_rank(device: str | torch.device) -> torch.device:
    """``device`` with a CUDA device made this worker's own (``cuda`` -> ``cuda:LOCAL_RANK``)."""
    device = torch.device(device)
    if device.type == "cuda" and device.index is None and is_distributed():
        return torch.device("cuda", local_rank())
    return device
