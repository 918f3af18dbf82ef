"""`mmzoo fit` killed with SIGKILL mid-epoch resumes from its last checkpoint on the same schedule.

Three real `python -m mmzoo.cli fit` processes on a synthetic AVE dataset (released-feature
layout, tiny widths, batch 2 -> 4 steps per epoch, StepLR every 3 steps):

- an uninterrupted reference run of 5 epochs;
- a run that is SIGKILLed (whole process group) in the middle of epoch 2, after `last.ckpt` of
  epoch 1 was written. To make the kill point deterministic, a callback module written by this
  test into the temporary folder blocks that run at a fixed global step and drops a marker file;
  the test waits for the marker and kills the process;
- `mmzoo fit ... --ckpt_path last` from the same `default_root_dir`.

The resumed run must start at the checkpoint's step (not 0), finish at the reference's
global step, and follow the reference's learning-rate schedule (LearningRateMonitor rows in the
CSV logs and the optimizer / scheduler states of the final checkpoints).
"""
from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from mmzoo.data.synthetic.ave import write_ave

STEPS_PER_EPOCH = 4  # 8 training rows (6 + repeated id + empty event), batch 2
EPOCHS = 5
LR, GAMMA, STEP = 1e-3, 0.5, 3
HANG_AT_STEP = 10  # inside epoch 2; last.ckpt holds the end of epoch 1 (step 8)

HANG_CALLBACK = '''
import os, time
from pytorch_lightning.callbacks import Callback


class HangAtStep(Callback):
    """Test helper: blocks training at a global step so that the test can kill it there."""

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.global_step >= int(os.environ["MMZOO_TEST_HANG_STEP"]):
            with open(os.environ["MMZOO_TEST_HANG_MARKER"], "w") as f:
                f.write(str(trainer.global_step))
            time.sleep(600)
'''


def _fit_argv(data_root: Path, run_dir: Path, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "mmzoo.cli", "fit",
        "--model", "cmcoatt-avsdn", "--data", "ave",
        "--data.root", str(data_root), "--data.batch_size", "2", "--data.num_workers", "0",
        "--model.region_dim", "16", "--model.inter_hidden", "16", "--model.hidden_dim", "8",
        "--model.lr", str(LR), "--model.lr_gamma", str(GAMMA), "--model.lr_step_iters", str(STEP),
        "--trainer.max_epochs", str(EPOCHS), "--trainer.accelerator", "cpu", "--trainer.devices", "1",
        "--trainer.log_every_n_steps", "1", "--trainer.enable_progress_bar", "false",
        "--trainer.enable_model_summary", "false",
        "--trainer.default_root_dir", str(run_dir), "--seed_everything", "0",
        "--trainer.callbacks+=LearningRateMonitor",
        *extra,
    ]


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["OMP_NUM_THREADS"] = "1"
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path / "helpers"), env.get("PYTHONPATH", "")])
    env.update(extra)
    return env


def _run(argv: list[str], env: dict[str, str], timeout: float = 240) -> subprocess.CompletedProcess:
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{' '.join(argv)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
    return proc


def _lr_rows(version_dir: Path) -> dict[int, float]:
    """step -> logged learning rate, from the CSVLogger file of one run."""
    rows: dict[int, float] = {}
    with open(version_dir / "metrics.csv", newline="") as f:
        for row in csv.DictReader(f):
            key = next((k for k in row if k.startswith("lr-")), None)
            if key and row[key] not in ("", None):
                rows[int(row["step"])] = float(row[key])
    return rows


def _load(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=False)


def _expected_lr(step: int) -> float:
    """StepLR value in effect for the batch at global step `step` (0-based)."""
    return LR * GAMMA ** (step // STEP)


def test_fit_resumes_after_sigkill_on_the_same_schedule(tmp_path):
    data = tmp_path / "ave"
    write_ave(data, with_videos=False, seed=0)
    helpers = tmp_path / "helpers"
    helpers.mkdir()
    (helpers / "mmzoo_test_hang.py").write_text(HANG_CALLBACK)
    total = EPOCHS * STEPS_PER_EPOCH

    # 1. the uninterrupted reference
    ref_dir = tmp_path / "reference"
    _run(_fit_argv(data, ref_dir), _env(tmp_path))
    ref_version = ref_dir / "lightning_logs" / "version_0"
    ref_ckpt = _load(ref_version / "checkpoints" / "last.ckpt")
    assert ref_ckpt["global_step"] == total
    ref_lr = _lr_rows(ref_version)
    assert sorted(ref_lr) == list(range(total))
    # the schedule really changes within the run (otherwise the comparison below proves little)
    assert len(set(ref_lr.values())) == -(-total // STEP)
    for step, lr in ref_lr.items():
        assert lr == pytest.approx(_expected_lr(step), rel=1e-6)

    # 2. a run killed with SIGKILL in the middle of epoch 2
    run_dir = tmp_path / "interrupted"
    marker = tmp_path / "hang-reached"
    last = run_dir / "lightning_logs" / "version_0" / "checkpoints" / "last.ckpt"
    env = _env(tmp_path, MMZOO_TEST_HANG_STEP=str(HANG_AT_STEP), MMZOO_TEST_HANG_MARKER=str(marker))
    log = open(tmp_path / "interrupted.log", "w")
    # the same `--ckpt_path last` as the restart below: with nothing saved yet it starts from 0
    proc = subprocess.Popen(_fit_argv(data, run_dir, "--ckpt_path", "last",
                                      "--trainer.callbacks+=mmzoo_test_hang.HangAtStep"),
                            env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 240
        while not marker.exists():
            if proc.poll() is not None:
                pytest.fail(f"the run ended (rc {proc.returncode}) before reaching step {HANG_AT_STEP}:\n"
                            + (tmp_path / "interrupted.log").read_text()[-5000:])
            if time.monotonic() > deadline:
                pytest.fail("timed out waiting for the run to reach the kill point")
            time.sleep(0.2)
        assert last.exists(), "no last.ckpt was written before the kill point"
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
        log.close()
    assert proc.returncode == -signal.SIGKILL
    saved = _load(last)
    assert saved["epoch"] >= 1
    saved_step = saved["global_step"]
    assert saved_step == (saved["epoch"] + 1) * STEPS_PER_EPOCH
    assert 0 < saved_step < int(marker.read_text()) < total  # killed after the save, before the end
    assert min(_lr_rows(last.parent.parent)) == 0

    # 3. resume with --ckpt_path last from the same folder
    restart = _run(_fit_argv(data, run_dir, "--ckpt_path", "last"), _env(tmp_path))
    assert f"resuming from {last}" in restart.stdout
    versions = sorted((run_dir / "lightning_logs").glob("version_*"))
    assert [v.name for v in versions] == ["version_0", "version_1"]
    resumed = versions[1]
    resumed_lr = _lr_rows(resumed)
    # continued from the checkpoint's global step, not from 0, up to the reference's last step
    assert min(resumed_lr) == saved_step
    assert sorted(resumed_lr) == list(range(saved_step, total))
    for step, lr in resumed_lr.items():
        assert lr == pytest.approx(ref_lr[step], rel=1e-9), f"lr differs at step {step}"

    final = _load(resumed / "checkpoints" / "last.ckpt")
    assert final["global_step"] == ref_ckpt["global_step"] == total
    assert final["epoch"] == ref_ckpt["epoch"] == EPOCHS - 1
    f_sched, r_sched = final["lr_schedulers"][0], ref_ckpt["lr_schedulers"][0]
    assert f_sched["last_epoch"] == r_sched["last_epoch"] == total
    assert f_sched["_last_lr"] == pytest.approx(r_sched["_last_lr"], rel=1e-9)
    assert f_sched["_last_lr"][0] == pytest.approx(_expected_lr(total), rel=1e-6)
    f_opt, r_opt = final["optimizer_states"][0], ref_ckpt["optimizer_states"][0]
    assert f_opt["param_groups"][0]["lr"] == pytest.approx(r_opt["param_groups"][0]["lr"], rel=1e-9)
    # Adam's moments were restored too: its step counters went on from the checkpoint's
    steps = {float(s["step"]) for s in f_opt["state"].values()}
    assert steps == {float(total)}
