"""A worker process for tests/test_scale_out.py: train or sample, optionally killing itself with SIGKILL.

Run as ``python tests/scale_out_worker.py train OUT.pt --checkpoint C [--kill-at N | --kill-in-write N]``
(also under ``torchrun``), or ``python tests/scale_out_worker.py sample MODEL OUTDIR --kill-after-parts N``.
A SIGKILL gives the process no chance to clean up: what is on disk afterwards is what a
crash, an OOM kill or a pre-empted node leaves.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys

import torch

import omegabridge as ob
from omegabridge.training import distributed

TRAIN_ROWS, ITERATIONS, BATCH = 300, 24, 32


def toy_problem():
    """A lattice + categorical + half-line domain, its data and a small DriftMLP (all seeded)."""
    domain = ob.Product([ob.Lattice(0, 6, step=1), ob.Categorical(3), ob.HalfLine(low=0.0)])
    bridge = ob.Bridge(domain, ob.schedules.Exp(a=3.0, b=4.0), steps=12)
    generator = torch.Generator().manual_seed(5)
    lattice = torch.randint(0, 7, (TRAIN_ROWS, 1), generator=generator).float()
    category = torch.nn.functional.one_hot(torch.randint(0, 3, (TRAIN_ROWS,), generator=generator), 3).float()
    amount = torch.rand(TRAIN_ROWS, 1, generator=generator) * 3.0
    data = torch.cat([lattice, category, amount], dim=1)
    torch.manual_seed(0)
    model = ob.models.DriftMLP(bridge, hidden=32, depth=2, data=data)
    return bridge, model, data


def kill_now() -> None:
    sys.stdout.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def kill_inside_the_nth_save(count: int) -> None:
    """Make the ``count``-th torch.save write half its bytes, then SIGKILL the process (mid-write)."""
    real_save, calls = torch.save, [0]

    def save(obj, path, *args, **kwargs):
        calls[0] += 1
        real_save(obj, path, *args, **kwargs)
        if calls[0] == count:
            size = os.path.getsize(path)
            with open(path, "r+b") as handle:
                handle.truncate(size // 2)
            kill_now()

    torch.save = save


def train(args) -> None:
    torch.set_num_threads(1)
    distributed.initialize("gloo")
    bridge, model, data = toy_problem()
    hooks = []
    if args.kill_at is not None:
        hooks.append(lambda record: kill_now() if record.iteration == args.kill_at else None)
    if args.kill_in_write is not None:
        kill_inside_the_nth_save(args.kill_in_write)
    trainer = ob.Trainer(bridge, model, batch_size=args.batch_size, learning_rate=1e-2, warmup=3, ema_decay=0.9,
                         checkpoint=args.checkpoint, checkpoint_every=args.checkpoint_every, seed=3, hooks=hooks,
                         log_every=1, progress=False, log=lambda message: None)
    try:
        trainer.fit(data, ITERATIONS)
    except ValueError as error:  # reported to the test through the output file
        torch.save({"error": str(error)}, f"{args.output}.rank{distributed.rank()}")
        return
    state = trainer.checkpoint_state()
    torch.save({"state": state, "rank": distributed.rank(), "world_size": distributed.world_size()},
               f"{args.output}.rank{distributed.rank()}")


def sample(args) -> None:
    from omegabridge.tabular import TabularBridge, sample_parts

    torch.set_num_threads(1)
    real_write, written = sample_parts.atomic_write, [0]

    def atomic_write(path, write):
        if written[0] == args.kill_after_parts:  # kill while this part's temporary file is half written
            def half(temporary):
                write(temporary)
                with open(temporary, "r+b") as handle:
                    handle.truncate(os.path.getsize(temporary) // 2)
                kill_now()
            return real_write(path, half)
        written[0] += 1
        return real_write(path, write)

    sample_parts.atomic_write = atomic_write
    model = TabularBridge.load(args.model, progress=False)
    model.sample_to(args.output, args.rows, args.seed, chunk_rows=args.chunk_rows)


def main() -> None:
    parser = argparse.ArgumentParser()
    commands = parser.add_subparsers(dest="command", required=True)
    training = commands.add_parser("train")
    training.add_argument("output")
    training.add_argument("--checkpoint")
    training.add_argument("--checkpoint-every", type=int, default=5)
    training.add_argument("--batch-size", type=int, default=BATCH)
    training.add_argument("--kill-at", type=int)
    training.add_argument("--kill-in-write", type=int)
    sampling = commands.add_parser("sample")
    sampling.add_argument("model")
    sampling.add_argument("output")
    sampling.add_argument("--rows", type=int, required=True)
    sampling.add_argument("--seed", type=int, default=0)
    sampling.add_argument("--chunk-rows", type=int, required=True)
    sampling.add_argument("--kill-after-parts", type=int, required=True)
    args = parser.parse_args()
    {"train": train, "sample": sample}[args.command](args)


if __name__ == "__main__":
    main()
