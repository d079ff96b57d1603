"""Scale-out: the Trainer (EMA, warmup + cosine, checkpoints, hooks), resume after SIGKILL, DDP under torchrun
(gloo on CPU), and sharded, resumable sampling to Parquet parts.

The kill tests run ``tests/scale_out_worker.py`` in a subprocess that SIGKILLs itself at a
chosen point (mid-epoch, inside a checkpoint write, inside a part's write), then resume
and compare with an uninterrupted run: bit for bit on CPU. The DDP tests launch 2
workers with ``torchrun --standalone`` and compare with 1 process.
"""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys

import pandas as pd
import pytest
import torch

import omegabridge as ob
from omegabridge.training import distributed
from omegabridge.tabular import TabularBridge
from omegabridge.tabular.sample_parts import JOB_FILE, PARTIAL_SUFFIX, part_rows
from omegabridge.tabular.table_files import read_table
from omegabridge.errors import TrainingCheckpointError

HERE = os.path.dirname(os.path.abspath(__file__))
WORKER = os.path.join(HERE, "scale_out_worker.py")
sys.path.insert(0, HERE)
from scale_out_worker import BATCH, ITERATIONS, TRAIN_ROWS, toy_problem  # noqa: E402
from test_cli import mixed_table  # noqa: E402

ENVIRONMENT = {**os.environ, "OMP_NUM_THREADS": "1"}


def launch(*argv, workers: int = 1, check: bool = True) -> subprocess.CompletedProcess:
    """Run the worker script (or ``-m omegabridge ...``) in 1 process or under torchrun with ``workers``."""
    if workers == 1:
        command = [sys.executable, *argv]
    else:
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={workers}", *argv]
    result = subprocess.run(command, capture_output=True, text=True, env=ENVIRONMENT, timeout=300)
    if check:
        assert result.returncode == 0, result.stdout + result.stderr
    return result


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def load_state(path) -> dict:
    return torch.load(path, weights_only=True)


def assert_states_identical(a: dict, b: dict) -> None:
    """Two checkpoint contents equal bit for bit (weights, Adam moments, schedule, EMA, losses, iteration)."""
    assert a["iteration"] == b["iteration"] and a["settings"] == b["settings"] and a["data"] == b["data"]
    assert a["scheduler"] == b["scheduler"]
    for part in ("model", "ema"):
        assert a[part].keys() == b[part].keys()
        for key in a[part]:
            assert torch.equal(a[part][key], b[part][key]), (part, key)
    assert torch.equal(a["losses"], b["losses"])
    for key, moments in a["optimizer"]["state"].items():
        for name, value in moments.items():
            assert torch.equal(value, b["optimizer"]["state"][key][name]), (key, name)


# ----------------------------------------------------------------------------------------
# the Trainer in one process
# ----------------------------------------------------------------------------------------
def make_trainer(checkpoint=None, **settings):
    bridge, model, data = toy_problem()
    defaults = dict(batch_size=BATCH, learning_rate=1e-2, seed=3, progress=False, log=lambda message: None)
    return ob.Trainer(bridge, model, checkpoint=checkpoint, **{**defaults, **settings}), data


def test_each_epoch_visits_every_row_once_and_batches_run_across_epochs():
    trainer, data = make_trainer(batch_size=64)
    trainer.fit(data, 1)  # sets up the data stream
    seen = torch.cat([trainer.draws(i)[0] for i in range(3 * TRAIN_ROWS // 64 + 1)])  # 15 batches, 960 rows
    for epoch in range(3):
        assert sorted(seen[epoch * TRAIN_ROWS:(epoch + 1) * TRAIN_ROWS].tolist()) == list(range(TRAIN_ROWS))
    assert not torch.equal(seen[:TRAIN_ROWS], seen[TRAIN_ROWS:2 * TRAIN_ROWS])  # a new order each epoch
    rows, times, noise_seed = trainer.draws(4)  # positions 256..319: the end of epoch 0 and the start of epoch 1
    assert torch.equal(rows, seen[256:320])
    again = trainer.draws(4)
    assert torch.equal(again[1], times) and again[2] == noise_seed  # a function of (seed, iteration) alone


def test_ema_warmup_cosine_and_hooks():
    records, weights = [], []
    bridge, model, data = toy_problem()

    def hook(record):
        records.append(record)
        weights.append([p.detach().clone() for p in model.parameters()])

    trainer = ob.Trainer(bridge, model, batch_size=BATCH, learning_rate=1e-2, warmup=4, ema_decay=0.8, seed=1,
                         hooks=[hook], log_every=1, progress=False)
    losses = trainer.fit(data, 10)
    assert [r.iteration for r in records] == list(range(1, 11)) and [r.loss for r in records] == losses
    # Learning rate after iteration i (0-based): warmup (i + 2) / 4 for i + 1 < 4, then a cosine over 6 iterations.
    expected = [1e-2 * ((i + 2) / 4 if i + 1 < 4 else 0.5 * (1 + math.cos(math.pi * (i + 1 - 4) / 6))) for i in range(10)]
    assert [r.learning_rate for r in records] == pytest.approx(expected, rel=1e-12, abs=1e-15)
    assert all(math.isfinite(r.gradient_norm) and r.gradient_norm > 0 for r in records)
    # EMA by hand: the first update copies, then e <- 0.8 e + 0.2 w.
    average = [w.clone() for w in weights[0]]
    for step in weights[1:]:
        average = [0.8 * e + 0.2 * w for e, w in zip(average, step)]
    for mine, theirs in zip(average, trainer.averaged_model.parameters()):
        torch.testing.assert_close(theirs, mine, rtol=1e-6, atol=1e-7)
    assert not torch.equal(next(trainer.averaged_model.parameters()), next(model.parameters()))


def test_bf16_autocast_trains_on_cpu():
    trainer, data = make_trainer(precision="bf16")
    losses = trainer.fit(data, 6)
    assert trainer.precision == "bf16" and all(math.isfinite(v) for v in losses)


def test_an_interrupted_run_resumes_to_the_same_weights_in_process(tmp_path):
    checkpoint = str(tmp_path / "train.ckpt")
    straight, data = make_trainer(ema_decay=0.9, checkpoint_every=4)
    straight.fit(data, 12)

    def stop(record):
        if record.iteration == 10:
            raise KeyboardInterrupt

    interrupted, _ = make_trainer(checkpoint, ema_decay=0.9, checkpoint_every=4, hooks=[stop], log_every=1)
    with pytest.raises(KeyboardInterrupt):
        interrupted.fit(data, 12)
    assert load_state(checkpoint)["iteration"] == 8
    messages = []
    resumed, _ = make_trainer(checkpoint, ema_decay=0.9, checkpoint_every=4, log=messages.append)
    losses = resumed.fit(data, 12)
    assert messages == [f"resuming from {checkpoint} at iteration 8 of 12"]
    assert losses == straight.losses and len(losses) == 12
    assert_states_identical(resumed.checkpoint_state(), straight.checkpoint_state())


@pytest.mark.parametrize(
    "change, words",
    [
        ({"batch_size": 16}, "batch_size 32 there, 16 here"),
        ({"seed": 4}, "seed 3 there, 4 here"),
        ({"ema_decay": None}, "ema_decay 0.9 there, None here"),
    ],
)
def test_a_checkpoint_of_another_run_is_refused_by_name(tmp_path, change, words):
    checkpoint = str(tmp_path / "train.ckpt")
    first, data = make_trainer(checkpoint, ema_decay=0.9, checkpoint_every=2)
    first.fit(data, 2)
    other, _ = make_trainer(checkpoint, **{"ema_decay": 0.9, "checkpoint_every": 2, **change})
    with pytest.raises(TrainingCheckpointError, match="belongs to another run") as caught:
        other.fit(data, 2)
    assert words in str(caught.value) and "resume=False" in str(caught.value) and checkpoint in str(caught.value)
    assert len(other.fit(data, 2, resume=False)) == 2  # starting over is allowed


def test_a_checkpoint_of_other_data_or_a_damaged_one_is_refused(tmp_path):
    checkpoint = str(tmp_path / "train.ckpt")
    first, data = make_trainer(checkpoint, checkpoint_every=2)
    first.fit(data, 2)
    other, _ = make_trainer(checkpoint, checkpoint_every=2)
    changed = data.clone()
    changed[0, 0] = 6.0 if changed[0, 0] != 6.0 else 5.0
    with pytest.raises(TrainingCheckpointError, match="trained on other data"):
        other.fit(changed, 2)
    with open(checkpoint, "r+b") as handle:
        handle.truncate(100)
    with pytest.raises(TrainingCheckpointError, match="damaged"):
        other.fit(data, 2)


@pytest.mark.parametrize(
    "settings, words",
    [
        ({"batch_size": 0}, "batch_size must be a positive integer"),
        ({"warmup": -1}, "warmup must be an integer >= 0"),
        ({"ema_decay": 1.0}, "ema_decay must be in (0, 1)"),
        ({"precision": "fp16"}, "precision must be one of"),
        ({"clip": -1.0}, "clip must be finite and >= 0"),
        ({"hooks": [3]}, "hooks must be callables"),
    ],
)
def test_bad_trainer_settings_are_named(settings, words):
    with pytest.raises((ValueError, TypeError)) as caught:
        make_trainer(**settings)
    assert words in str(caught.value)


def test_a_model_without_parameters_is_named():
    bridge, _, _ = toy_problem()
    with pytest.raises(ValueError, match="has no parameters to train"):
        ob.Trainer(bridge, torch.nn.Identity())


# ----------------------------------------------------------------------------------------
# SIGKILL and resume (subprocesses)
# ----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """The state after an uninterrupted run of the worker (checkpoints every 5 iterations)."""
    folder = tmp_path_factory.mktemp("straight")
    launch(WORKER, "train", str(folder / "out"), "--checkpoint", str(folder / "train.ckpt"))
    return load_state(f"{folder / 'out'}.rank0")["state"]


@pytest.mark.parametrize("kill", [["--kill-at", "13"], ["--kill-in-write", "3"]], ids=["mid-epoch", "mid-checkpoint-write"])
def test_sigkill_then_resume_ends_bit_for_bit_like_an_uninterrupted_run(tmp_path, uninterrupted, kill):
    checkpoint, out = tmp_path / "train.ckpt", tmp_path / "out"
    killed = launch(WORKER, "train", str(out), "--checkpoint", str(checkpoint), *kill, check=False)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert not os.path.exists(f"{out}.rank0")
    # 13 iterations in an epoch of 300 / 32 rows: mid-epoch, after the checkpoint at 10; the third
    # save (iteration 15) is cut in half: only its temporary file is damaged, the one at 10 is whole.
    leftovers = [name for name in os.listdir(tmp_path) if name.endswith(".tmp")]
    assert bool(leftovers) == (kill[0] == "--kill-in-write"), leftovers
    assert load_state(checkpoint)["iteration"] == 10
    launch(WORKER, "train", str(out), "--checkpoint", str(checkpoint))
    assert [name for name in os.listdir(tmp_path) if name.endswith(".tmp")] == []
    resumed = load_state(f"{out}.rank0")["state"]
    assert resumed["iteration"] == ITERATIONS
    assert_states_identical(resumed, uninterrupted)


# ----------------------------------------------------------------------------------------
# DDP under torchrun (gloo, 2 CPU workers)
# ----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def two_workers(tmp_path_factory):
    """An uninterrupted 2-worker DDP run of the worker script: each rank's final state, and rank 0's checkpoint."""
    folder = tmp_path_factory.mktemp("ddp")
    out = folder / "out"
    launch(WORKER, "train", str(out), "--checkpoint", str(folder / "train.ckpt"), workers=2)
    return [load_state(f"{out}.rank{r}") for r in range(2)], load_state(folder / "train.ckpt")


def test_two_worker_ddp_training_matches_one_process(two_workers, uninterrupted):
    ranks, written = two_workers
    assert [r["rank"] for r in ranks] == [0, 1] and all(r["world_size"] == 2 for r in ranks)
    assert_states_identical(ranks[0]["state"], ranks[1]["state"])  # losses and checkpoints: same whatever the rank
    two, one = ranks[0]["state"], uninterrupted
    assert two["iteration"] == one["iteration"] == ITERATIONS
    # Same global batch, times and noise; only the order of float sums differs.
    torch.testing.assert_close(two["losses"], one["losses"], rtol=1e-5, atol=1e-6)
    for part in ("model", "ema"):
        for key in one[part]:
            torch.testing.assert_close(two[part][key], one[part][key], rtol=1e-4, atol=1e-5, msg=f"{part} {key}")
    assert_states_identical(written, ranks[1]["state"])  # rank 0's file holds what every rank holds


def test_a_killed_ddp_run_resumes_to_the_same_weights(tmp_path, two_workers):
    checkpoint, out = tmp_path / "train.ckpt", tmp_path / "out"
    killed = launch(WORKER, "train", str(out), "--checkpoint", str(checkpoint), "--kill-at", "13", workers=2, check=False)
    assert killed.returncode != 0  # rank 0 SIGKILLed itself mid-epoch; torchrun stopped rank 1
    assert load_state(checkpoint)["iteration"] == 10 and not os.path.exists(f"{out}.rank0")
    launch(WORKER, "train", str(out), "--checkpoint", str(checkpoint), workers=2)
    for rank in range(2):
        assert_states_identical(load_state(f"{out}.rank{rank}")["state"], two_workers[0][rank]["state"])


def test_a_global_batch_that_does_not_divide_among_workers_is_named(tmp_path):
    out = tmp_path / "out"
    launch(WORKER, "train", str(out), "--batch-size", "33", workers=2)
    for rank in range(2):
        message = load_state(f"{out}.rank{rank}")["error"]
        assert "batch_size 33 does not divide among 2 workers" in message


# ----------------------------------------------------------------------------------------
# sharded, resumable sampling
# ----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def table_model(tmp_path_factory):
    folder = tmp_path_factory.mktemp("model")
    model = TabularBridge(steps=6, hidden=16, depth=1, verbose=False, progress=False)
    model.fit(mixed_table(200, seed=0), {"level": {"kind": "interval", "low": 0, "high": 100}}, iterations=5,
              batch_size=32)
    path = str(folder / "model.ckpt")
    model.save(path)
    return path


def part_files(folder) -> list[str]:
    return sorted(name for name in os.listdir(folder) if name.startswith("part-"))


def test_parts_split_into_contiguous_worker_ranges():
    assert part_rows(10, 4) == [(0, 4), (4, 4), (8, 2)]
    shares = [list(distributed.contiguous_range(7, rank, 3)) for rank in range(3)]
    assert shares == [[0, 1, 2], [3, 4], [5, 6]]
    assert [list(distributed.contiguous_range(2, rank, 3)) for rank in range(3)] == [[0], [1], []]
    with pytest.raises(ValueError, match="rank must be in"):
        distributed.contiguous_range(5, 3, 3)


def test_two_worker_sampling_equals_one_process_row_for_row(tmp_path, table_model):
    argv = ["-m", "omegabridge", "sample", table_model, "-n", "1000", "--seed", "7", "--chunk-rows", "150",
            "--no-progress", "-o"]
    launch(*argv, str(tmp_path / "one"))
    result = launch(*argv, str(tmp_path / "two"), workers=2)
    assert "wrote 1000 rows" in result.stdout and "in 7 part file(s)" in result.stdout
    assert part_files(tmp_path / "one") == part_files(tmp_path / "two") == [f"part-{i:05d}.parquet" for i in range(7)]
    assert sorted(os.listdir(tmp_path)) == ["one", "two"]  # no .partial left
    one, two = read_table(str(tmp_path / "one")), read_table(str(tmp_path / "two"))
    pd.testing.assert_frame_equal(one, two, check_exact=True)
    expected = TabularBridge.load(table_model, progress=False).sample(1000, seed=7).reset_index(drop=True)
    pd.testing.assert_frame_equal(one, expected, check_exact=True)
    with open(tmp_path / "one" / "manifest.json") as a, open(tmp_path / "two" / "manifest.json") as b:
        assert a.read() == b.read()


def test_a_killed_sample_resumes_without_redoing_parts_or_leaving_partial_ones(tmp_path, table_model):
    out = tmp_path / "out"
    staging = tmp_path / ("out" + PARTIAL_SUFFIX)
    killed = launch(WORKER, "sample", table_model, str(out), "--rows", "700", "--chunk-rows", "100",
                    "--kill-after-parts", "3", check=False)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert not out.exists()
    names = sorted(os.listdir(staging))
    assert part_files(staging) == ["part-00000.parquet", "part-00001.parquet", "part-00002.parquet"]
    assert JOB_FILE in names and any(n.endswith(".tmp") for n in names)  # part 3 died half written
    before = {name: os.stat(staging / name).st_mtime_ns for name in part_files(staging)}
    result = launch("-m", "omegabridge", "sample", table_model, "-n", "700", "--chunk-rows", "100", "--no-progress",
                    "-o", str(out))
    assert "(3 part(s) were already done)" in result.stdout
    assert sorted(os.listdir(tmp_path)) == ["out"]
    assert sorted(os.listdir(out)) == ["manifest.json"] + [f"part-{i:05d}.parquet" for i in range(7)]
    assert {name: os.stat(out / name).st_mtime_ns for name in before} == before  # finished parts were kept
    expected = TabularBridge.load(table_model, progress=False).sample(700, seed=0).reset_index(drop=True)
    pd.testing.assert_frame_equal(read_table(str(out)), expected, check_exact=True)


def test_an_unfinished_sample_of_another_job_is_refused_unless_overwrite(tmp_path, table_model):
    out = tmp_path / "out"
    model = TabularBridge.load(table_model, progress=False)
    model.sample_to(str(out), 300, seed=1, chunk_rows=100)
    os.rename(out, str(out) + PARTIAL_SUFFIX)  # stands in for a run of seed 1 killed after its parts
    with open(os.path.join(str(out) + PARTIAL_SUFFIX, JOB_FILE), "w") as handle:
        handle.write('{"format": "omegabridge.sample-job", "rows": 300, "seed": 1}')
    with pytest.raises(ValueError, match="holds an unfinished sample of another job") as caught:
        model.sample_to(str(out), 300, seed=2, chunk_rows=100)
    assert "seed 1 there, 2 here" in str(caught.value) and "overwrite" in str(caught.value)
    model.sample_to(str(out), 300, seed=2, chunk_rows=100, overwrite=True)
    expected = model.sample(300, seed=2).reset_index(drop=True)
    pd.testing.assert_frame_equal(read_table(str(out)), expected, check_exact=True)
    assert sorted(os.listdir(tmp_path)) == ["out"]


def test_omegabridge_fit_under_torchrun_matches_one_process(tmp_path):
    data = tmp_path / "data.csv"
    mixed_table(200, seed=0).to_csv(data, index=False)
    argv = ["-m", "omegabridge", "fit", str(data), "--iterations", "12", "--steps", "6", "--batch-size", "64",
            "--checkpoint-every", "5", "--no-progress", "-o"]
    launch(*argv, str(tmp_path / "one.ckpt"))
    result = launch(*argv, str(tmp_path / "two.ckpt"), workers=2)
    assert result.stdout.count("final loss") == 1 and "on 2 workers" in result.stdout  # rank 0 speaks
    assert sorted(os.listdir(tmp_path)) == ["data.csv", "one.ckpt", "two.ckpt"]  # no .partial left
    one = torch.load(tmp_path / "one.ckpt", weights_only=True)["weights"]
    two = torch.load(tmp_path / "two.ckpt", weights_only=True)["weights"]
    for key in one:
        torch.testing.assert_close(two[key], one[key], rtol=1e-4, atol=1e-5, msg=key)
