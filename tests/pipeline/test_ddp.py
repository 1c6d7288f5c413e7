"""Data-parallel training under torchrun: two CPU processes on gloo train cnn-small on the embedded digits.

Each test starts torchrun (``python -m torch.distributed.run``) on a free port, so tests never collide. The
networks train with the same global batch, learning rate and schedule as one process (glyphlab.models.torch.ddp),
so the two-process run is compared with the one-process run of the same seed."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from net_helpers import free_port

from glyphlab.pipeline.run import RunConfig, run

EPOCHS = 3
MODEL_ARGS = ["--dataset", "digits", "--models", "cnn-small,logreg", "--param", f"cnn-small.epochs={EPOCHS}"]
#: the two runs take the same steps on the same batches from the same initial weights; they differ only in
#: float summation order (the gradient is averaged over two halves) and BatchNorm's statistics (each rank's
#: half-batch). Over 3 epochs that moves a handful of the 450 test images: 0.04 (18 images) leaves room for
#: that without letting a broken split (a rank training on the wrong share, an unscaled gradient) pass; the
#: runs measured here agreed to within 0.005.
ACCURACY_TOLERANCE = 0.04

# torchrun's script for the kill test: rank 1 SIGKILLs itself right after epoch 1's checkpoint is on disk
KILLER = textwrap.dedent("""
    import os, signal, sys
    import torch.distributed as dist
    from glyphlab.models.torch import callbacks

    written = callbacks.Checkpoint.after_epoch

    def after_epoch(self):
        written(self)
        dist.barrier()  # rank 0 has written this epoch's checkpoint
        if self.trainer.epoch == 1 and dist.get_rank() == 1:
            os.kill(os.getpid(), signal.SIGKILL)

    callbacks.Checkpoint.after_epoch = after_epoch
    from glyphlab.cli import main

    sys.argv = ["glyphlab", *sys.argv[1:]]
    main()
""")


def _env() -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(p for p in sys.path if p),
        "GLYPHLAB_NUM_THREADS": "1",  # two ranks on a small CPU: one thread each
        "COLUMNS": "200",
    }


def _glyphlab(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "glyphlab", *args]
    return subprocess.run(cmd, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=600)


def _torchrun(target: list[str], args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port", str(free_port())]
    return subprocess.run([*cmd, *target, *args], cwd=cwd, env=_env(), capture_output=True, text=True, timeout=600)


def _accuracy(out: Path, model: str = "cnn-small") -> float:
    return json.loads((out / "models" / model / "metrics.json").read_text())["accuracy"]


def test_two_process_run_killed_resumes_and_matches_the_one_process_run(tmp_path):
    """One test, to start torchrun twice rather than three times (each start imports glyphlab in every rank)."""
    out = tmp_path / "ddp"
    (tmp_path / "killer.py").write_text(KILLER)
    killed = _torchrun(["killer.py"], ["run", *MODEL_ARGS, "--out", str(out), "--no-report"], tmp_path)
    assert killed.returncode != 0, killed.stdout[-2000:]  # torchrun ends the whole group when a rank dies
    assert "Signals.SIGKILL" in killed.stderr or "-9" in killed.stderr, killed.stderr[-3000:]
    state = json.loads((out / "models" / "cnn-small" / "checkpoint" / "state.json").read_text())
    assert state["epoch"] == 1 and not (out / "models" / "cnn-small" / "done.json").exists()
    # no model had finished: the folder stays all the same. Whether rank 0 first fails on its lost peer (and writes
    # failed.json) or is stopped by torchrun's SIGTERM (an interruption, as Ctrl-C: no failed.json) is a race
    # between the two processes, so only what both leave is checked: the folder, its config and the checkpoint.
    assert (out / "config.json").exists() and (out / "models" / "cnn-small" / "checkpoint").is_dir()
    if (out / "failed.json").exists():
        assert json.loads((out / "failed.json").read_text())["finished_models"] == []

    # resumed through glyphlab's own --nproc-per-node, which starts torchrun (--standalone: a free port)
    resumed = _glyphlab(["run", "--nproc-per-node", "2", "--resume", str(out), "--no-report"], tmp_path)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    # one process reports: each epoch's line and the leaderboard appear once, not once per rank
    assert resumed.stdout.count(f"epoch   {EPOCHS}/{EPOCHS}") == 1, resumed.stdout
    assert resumed.stdout.count("leaderboard") == 1
    assert (out / "models" / "cnn-small" / "done.json").exists()
    assert (out / "models" / "logreg" / "done.json").exists()  # the classical model, fit by rank 0 alone
    history = (out / "models" / "cnn-small" / "history.csv").read_text().splitlines()
    assert [row.split(",")[0] for row in history[1:]] == [str(e) for e in range(1, EPOCHS + 1)]
    metrics = json.loads((out / "models" / "cnn-small" / "metrics.json").read_text())
    assert metrics["train_pre_resume_seconds"] > 0  # epoch 1 came from the killed run's checkpoint
    assert not (out / "models" / "cnn-small" / "checkpoint").exists()

    params = {"cnn-small": {"epochs": EPOCHS}}
    one = run(RunConfig(dataset="digits", models=["cnn-small"], params=params), tmp_path / "one", report=False)
    assert abs(_accuracy(out) - _accuracy(one)) <= ACCURACY_TOLERANCE, (_accuracy(out), _accuracy(one))
