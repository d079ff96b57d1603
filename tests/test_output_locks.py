"""One job per output: two real processes into one OUT never mix, and a dead job's lock never blocks.

Job A is a real ``omegabridge sample`` process. It is frozen (SIGSTOP) once its
``OUT.partial`` exists, so it is alive and mid-job whatever the machine's speed; job B
then targets the same OUT. Job B must fail at once, naming A's pid, even with
``--overwrite``; A, resumed, must finish with only its own rows. After a SIGKILL the
lock is the dead process's and the same command resumes. Expected rows come from the
in-process API, not from the CLI under test.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

pd = pytest.importorskip("pandas")

import omegabridge as ob  # noqa: E402
from omegabridge.errors import OutputLockedError  # noqa: E402
from omegabridge.files import output_lock  # noqa: E402
from omegabridge.tabular.table_files import read_table, write_table  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ROWS, CHUNK = 200_000, 2_000  # 100 parts: several seconds of work, so A is caught mid-job


def _env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    return env


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"colour": rng.choice(["red", "blue"], 200), "size": rng.normal(size=200)})
    model = ob.TabularBridge(steps=20, hidden=16, depth=1, progress=False, verbose=False)
    model.fit(frame, iterations=3, batch_size=32)
    path = str(tmp_path_factory.mktemp("model") / "m.ckpt")
    model.save(path)
    return path


def _sample_command(model_path, out, seed, *extra):
    return [sys.executable, "-m", "omegabridge", "sample", model_path, "-n", str(ROWS), "--chunk-rows", str(CHUNK),
            "--seed", str(seed), "-o", str(out), "--no-progress", *extra]


def _start_and_freeze(command, staging) -> subprocess.Popen:
    """Start ``command``; once ``staging``/job.json exists, stop the process (alive, holding its lock)."""
    job = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(), cwd=ROOT)
    deadline = time.monotonic() + 120
    while not os.path.exists(os.path.join(staging, "job.json")):
        assert job.poll() is None, f"job A ended before it was caught mid-job: {job.communicate()}"
        assert time.monotonic() < deadline, "job A did not start its parts folder within 120 s"
        time.sleep(0.02)
    os.kill(job.pid, signal.SIGSTOP)
    assert job.poll() is None, "job A finished before it could be frozen"
    return job


def _run(command) -> subprocess.CompletedProcess:
    return subprocess.run(command, capture_output=True, text=True, timeout=300, env=_env(), cwd=ROOT)


def test_a_second_sample_job_into_a_live_jobs_folder_fails_at_once_and_the_first_finishes_alone(model_path, tmp_path):
    out = tmp_path / "out"
    job_a = _start_and_freeze(_sample_command(model_path, out, 0), str(out) + ".partial")
    try:
        started = time.monotonic()
        job_b = _run(_sample_command(model_path, out, 1, "--overwrite"))
        assert job_b.returncode == 1, job_b
        assert f"is being written by another job (pid {job_a.pid} on host" in job_b.stderr, job_b.stderr
        assert time.monotonic() - started < 60  # at once: not waiting for A
    finally:
        os.kill(job_a.pid, signal.SIGCONT)
    stdout, stderr = job_a.communicate(timeout=300)
    assert job_a.returncode == 0, stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["seed"] == 0 and manifest["rows"] == ROWS
    model = ob.TabularBridge.load(model_path, progress=False)
    sample = read_table(str(out))
    for first in (0, 57 * CHUNK, ROWS - CHUNK):  # parts from the start, the middle and the end
        expected = model.sample(CHUNK, 0, row_offset=first).reset_index(drop=True)
        pd.testing.assert_frame_equal(sample.iloc[first:first + CHUNK].reset_index(drop=True), expected)
    assert sorted(os.listdir(tmp_path)) == ["out"]  # no lock file, no partial folder left


def test_a_killed_jobs_lock_does_not_block_the_rerun_which_resumes(model_path, tmp_path):
    out = tmp_path / "out"
    job_a = _start_and_freeze(_sample_command(model_path, out, 0), str(out) + ".partial")
    os.kill(job_a.pid, signal.SIGKILL)
    job_a.wait(timeout=60)
    assert os.path.exists(str(out) + ".lock")  # left by the kill, naming a dead process
    rerun = _run(_sample_command(model_path, out, 0))
    assert rerun.returncode == 0, rerun.stderr
    assert json.loads((out / "manifest.json").read_text())["seed"] == 0
    assert sorted(os.listdir(tmp_path)) == ["out"]


def _hold_lock(path) -> subprocess.Popen:
    """Another process holding ``output_lock(path)`` until it is killed."""
    script = (f"import sys, time\nfrom omegabridge.files import output_lock\nwith output_lock({str(path)!r}):\n"
              "    print('held', flush=True)\n    time.sleep(600)\n")
    holder = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, env=_env(), cwd=ROOT)
    assert holder.stdout.readline().strip() == "held"
    return holder


@pytest.mark.parametrize("kind", ["csv", "parquet", "parts", "checkpoint"])
def test_every_writer_refuses_an_output_another_process_holds(model_path, tmp_path, kind):
    out = tmp_path / {"csv": "x.csv", "parquet": "x.parquet", "parts": "x", "checkpoint": "x.ckpt"}[kind]
    model = ob.TabularBridge.load(model_path, progress=False)
    write = {
        "csv": lambda: write_table(model.sample(5), str(out), overwrite=True),
        "parquet": lambda: write_table(model.sample(5), str(out), overwrite=True),
        "parts": lambda: model.sample_to(str(out), 10, 0, chunk_rows=5, overwrite=True),
        "checkpoint": lambda: model.save(str(out), overwrite=True),
    }[kind]
    holder = _hold_lock(out)
    try:
        with pytest.raises(OutputLockedError, match=rf"{out} is being written by another job \(pid {holder.pid} on host"):
            write()
        assert sorted(os.listdir(tmp_path)) == [out.name + ".lock"]  # nothing written beside the holder's lock
    finally:
        holder.kill()
        holder.wait()
    write()  # the holder is dead: its lock is gone with it
    assert sorted(os.listdir(tmp_path)) == [out.name]


def test_a_second_fit_into_the_same_model_fails_while_the_first_trains(tmp_path):
    data = tmp_path / "data.csv"
    pd.DataFrame({"x": np.arange(100.0)}).to_csv(data, index=False)
    out = tmp_path / "m.ckpt"
    holder = _hold_lock(out)  # stands in for a fit that is training
    try:
        result = _run([sys.executable, "-m", "omegabridge", "fit", str(data), "-o", str(out), "--iterations", "2",
                       "--no-progress"])
    finally:
        holder.kill()
        holder.wait()
    assert result.returncode == 1 and f"pid {holder.pid}" in result.stderr, result.stderr
    assert not out.exists()


def test_the_same_process_may_re_enter_its_lock(tmp_path):
    out = tmp_path / "x.csv"
    with output_lock(out), output_lock(out):
        assert os.path.exists(str(out) + ".lock")
    assert not os.path.exists(str(out) + ".lock")
