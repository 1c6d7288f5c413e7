"""glyphlab search: space validation, a small real search, kill -9 and resume, two workers on PostgreSQL."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from glyphlab.errors import ConfigError
from glyphlab.pipeline.folds import FoldJob, fold_workers
from glyphlab.pipeline.search import builtin_spaces, cv_score, load_space, model_params, parse_space

optuna = pytest.importorskip("optuna")

GLYPHLAB = [sys.executable, "-m", "glyphlab.cli"]
#: ``glyphlab search`` whose trials sleep first (the test's own monkeypatch), so a kill lands inside a trial
SLOW_SEARCH = [sys.executable, str(Path(__file__).with_name("slow_search.py"))]


def _env(**extra: str) -> dict[str, str]:
    env = {
        **os.environ,
        "OPENBLAS_NUM_THREADS": "1",
        "OMP_NUM_THREADS": "1",
        "GLYPHLAB_NUM_THREADS": "1",
        "COLUMNS": "120",
        **extra,
    }
    return env


# -- space validation -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "space, message",
    [
        ({"C": {"type": "float", "low": 10.0, "high": 1.0}}, "space.C: 'low' must be < 'high'"),
        ({"C": {"type": "flaot", "low": 1.0, "high": 2.0}}, "space.C: unknown type 'flaot'"),
        ({"C": {"low": 1.0, "high": 2.0}}, "space.C: missing 'type'"),
        ({"Cee": {"type": "float", "low": 1.0, "high": 2.0}}, "space.Cee: model 'svm' has no parameter 'Cee'"),
        ({"C": {"type": "float", "low": 0.0, "high": 2.0, "log": True}}, "space.C: log = true needs 'low' > 0"),
        ({"C": {"type": "float", "low": 1.0, "hgih": 2.0}}, "space.C: unknown key(s) 'hgih'"),
        ({"gamma": {"type": "choice", "values": []}}, "space.gamma: 'values' must be a non-empty list"),
        ({"C": {"type": "int", "low": 1.5, "high": 2}}, "space.C: 'low' must be an integer"),
        ({"C": {"type": "float", "low": "a", "high": 2.0}}, "space.C: 'low' must be a number"),
    ],
)
def test_space_errors_name_the_field(space, message):
    with pytest.raises(ConfigError) as err:
        parse_space({"space": space}, "svm")
    assert message in str(err.value)


def test_space_other_errors():
    with pytest.raises(ConfigError, match=r"fixed\.nope: model 'svm' has no parameter"):
        parse_space({"space": {"C": {"type": "float", "low": 1.0, "high": 2.0}}, "fixed": {"nope": 1}}, "svm")
    with pytest.raises(ConfigError, match=r"search\.model: this space is for model 'svm', not 'logreg'"):
        parse_space({"search": {"model": "svm"}, "space": {"C": {"type": "float", "low": 1.0, "high": 2.0}}}, "logreg")
    with pytest.raises(ConfigError, match="no space file"):
        load_space("no-such-space")


def test_shipped_spaces_load_and_are_found_by_name():
    shipped = builtin_spaces()
    assert {"seed002-pca-svm", "seed002-cnn", "seed004-cnn", "svm-default"} <= set(shipped)
    for name in shipped:
        space = load_space(name)
        assert space.params and space.model
    assert set(load_space("seed002-pca-svm").params) == {"n_components", "C", "gamma"}
    assert len(load_space("seed004-cnn").grid()["lr"]) == 2


# -- a small real search ------------------------------------------------------------------------------------
def _cli(args: list[str]):
    from typer.testing import CliRunner

    from glyphlab.cli import app

    return CliRunner().invoke(app, args, env={"COLUMNS": "120"})


def test_small_search_writes_outputs_and_beats_default(tmp_path):
    out = tmp_path / "run"
    args = [
        "search",
        "--dataset",
        "digits",
        "--model",
        "svm",
        "--space",
        "svm-default",
        "--trials",
        "6",
        "--cv",
        "3",
        "--out",
        str(out),
    ]
    res = _cli(args)
    assert res.exit_code == 0, res.output
    for name in (
        "trials.csv",
        "best_params.json",
        "optimization_history.png",
        "param_importance.png",
        "study.db",
        "leaderboard.csv",
        "models/svm-best/metrics.json",
        "models/svm-best/model/manifest.json",
        "models/svm-best/predictions.npz",
    ):
        assert (out / name).is_file(), name
    best = json.loads((out / "best_params.json").read_text())
    rows = (out / "trials.csv").read_text().splitlines()
    assert rows[0].startswith("number,params,mean,std,seconds,state")
    assert len(rows) == 7 and all(",COMPLETE," in r for r in rows[1:])
    assert "svm-best" in (out / "leaderboard.csv").read_text()

    # the default svm's CV score, computed the same way (same pool, folds and seed)
    from glyphlab.data.splits import merge_splits
    from glyphlab.pipeline.run import RunConfig, load_run_dataset

    ds = load_run_dataset(RunConfig(dataset="digits", models=["svm"], seed=0))
    pool = merge_splits(ds, ["train", "val"])
    default_mean, _, _ = cv_score(
        FoldJob("svm", model_params("svm", {}, {}, 0), pool.images, pool.labels, 3, 0, ds.classes)
    )
    assert best["mean"] >= default_mean, (best, default_mean)

    # rerunning the finished command runs no new trial and keeps the refit model
    res = _cli(args)
    assert res.exit_code == 0, res.output
    assert "already holds 6 finished" in res.output and "already finished, kept" in res.output
    # a different space under the same study is refused
    res = _cli(
        [
            "search",
            "--dataset",
            "digits",
            "--space",
            "seed002-pca-svm",
            "--study",
            "svm-digits",
            "--trials",
            "1",
            "--out",
            str(out),
        ]
    )
    assert res.exit_code == 2 and "different search" in res.output


def test_cv_folds_run_in_parallel_with_the_same_scores():
    from glyphlab.data.splits import merge_splits
    from glyphlab.pipeline.run import RunConfig, load_run_dataset

    ds = load_run_dataset(RunConfig(dataset="digits", models=["svm"], seed=0))
    pool = merge_splits(ds, ["train", "val"])
    params = model_params("svm", {"calibrate": False}, {}, 0)
    seen: list[tuple[int, float]] = []
    one = cv_score(FoldJob("svm", params, pool.images, pool.labels, 3, 0, ds.classes, n_jobs=1))
    two = cv_score(
        FoldJob("svm", params, pool.images, pool.labels, 3, 0, ds.classes, n_jobs=2), lambda i, s: seen.append((i, s))
    )
    assert two == one and 0.9 < one[0] < 1.0
    assert seen == list(enumerate(one[2]))  # every fold reported, in fold order
    # one worker per core, at most one per fold; none extra for models that use the cores themselves
    assert fold_workers("svm", 3, 2) == 2 and fold_workers("svm", 3, 8) == 3
    assert fold_workers("random-forest", 5, 8) == 1 and fold_workers("xgboost", 5, 8) == 1


# -- kill -9 and resume -----------------------------------------------------------------------------------------
def _count(db: Path, state: str) -> int:
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1)
        try:
            return con.execute("select count(*) from trials where state = ?", (state,)).fetchone()[0]
        finally:
            con.close()
    except sqlite3.Error:
        return 0


def _kill_inside_a_trial(args: list[str], out: Path, complete: int, delay: float) -> None:
    """Run ``glyphlab search ARGS`` with trials that sleep ``delay`` first; kill -9 it inside the trial after the
    study holds ``complete`` COMPLETE trials."""
    proc = subprocess.Popen(
        SLOW_SEARCH + [str(delay)] + args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=_env()
    )
    try:
        deadline = time.monotonic() + 600  # generous: a loaded machine starts Python and Optuna slowly
        while _count(out / "study.db", "COMPLETE") < complete:
            assert proc.poll() is None, proc.stdout.read().decode()
            assert time.monotonic() < deadline, f"the search never completed {complete} trial(s)"
            time.sleep(0.05)
        time.sleep(delay / 3)  # into the next trial's delay
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
        proc.stdout.close()


def test_kill_and_resume(tmp_path):
    out = tmp_path / "run"
    args = [
        "--dataset",
        "digits",
        "--space",
        "svm-default",
        "--trials",
        "8",
        "--cv",
        "2",
        "--sampler",
        "random",
        "--out",
        str(out),
        "--no-refit",
    ]
    env = _env()
    _kill_inside_a_trial(args, out, complete=2, delay=0.6)
    assert _count(out / "study.db", "COMPLETE") < 8
    res = subprocess.run(GLYPHLAB + ["search"] + args, capture_output=True, text=True, env=env, timeout=240)
    assert res.returncode == 0, res.stdout + res.stderr
    study = optuna.load_study(study_name="svm-digits", storage=f"sqlite:///{out / 'study.db'}")
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(complete) == 8
    assert len({t.number for t in complete}) == 8
    assert not [t for t in study.trials if t.state == optuna.trial.TrialState.RUNNING]
    failed = [t for t in study.trials if t.state == optuna.trial.TrialState.FAIL]
    for t in failed:  # the trial the kill interrupted was asked again with the same parameters
        assert "killed" in t.user_attrs.get("note", "")
        # its retry keeps every parameter it had drawn (one killed between two draws draws the rest anew)
        assert any(all(c.params.get(k) == v for k, v in t.params.items()) for c in complete)


SVM_GRID = """
[search]
model = "svm"
[space.C]
type = "choice"
values = [0.5, 5.0, 50.0]
[space.gamma]
type = "choice"
values = [0.001, 0.01]
"""


@pytest.mark.parametrize("sampler", ["random", "tpe", "grid"])
def test_a_resumed_search_continues_the_study_instead_of_replaying_it(tmp_path, sampler):
    """Killed after its first trial and started again, a search runs exactly --trials finished trials, every one
    with parameters of its own (the sampler used to restart its random stream and re-ask trial 0's point)."""
    out = tmp_path / "run"
    space = "svm-default"
    if sampler == "grid":
        space = str(tmp_path / "grid.toml")
        Path(space).write_text(SVM_GRID)
    args = [
        "--dataset",
        "digits",
        "--space",
        space,
        "--trials",
        "6",
        "--cv",
        "2",
        "--sampler",
        sampler,
        "--pruner",
        "none",
        "--out",
        str(out),
        "--no-refit",
        "--variant",
        "subset:400",
    ]
    _kill_inside_a_trial(args, out, complete=1, delay=1.0)
    assert _count(out / "study.db", "COMPLETE") < 6  # (0 while the killed writer's journal is unrecovered)
    res = subprocess.run(GLYPHLAB + ["search"] + args, capture_output=True, text=True, env=_env(), timeout=240)
    assert res.returncode == 0, res.stdout + res.stderr
    study = optuna.load_study(study_name="svm-digits", storage=f"sqlite:///{out / 'study.db'}")
    finished = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    points = [tuple(sorted(t.params.items())) for t in finished]
    assert len(finished) == 6
    assert len(set(points)) == 6, points
    assert not [t for t in study.trials if t.state == optuna.trial.TrialState.RUNNING]
    if sampler == "grid":  # every grid point, once
        assert {dict(p)["C"] for p in points} == {0.5, 5.0, 50.0} and {dict(p)["gamma"] for p in points} == {
            0.001,
            0.01,
        }


# -- two workers on PostgreSQL ----------------------------------------------------------------------------------
def _pg_bin() -> Path | None:
    for base in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (base / "initdb").is_file() and (base / "pg_ctl").is_file():
            return base
    found = shutil.which("initdb")
    return Path(found).parent if found and shutil.which("pg_ctl") else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def postgres():
    """A throwaway PostgreSQL cluster on a free localhost port; yields its URL."""
    pg = _pg_bin()
    if pg is None:
        pytest.skip("PostgreSQL is not installed (Debian: apt-get install postgresql)")
    pytest.importorskip("psycopg2", reason="psycopg2 is not installed (pip install psycopg2-binary)")
    # not under pytest's tmp folder: as root that is private to root, and the cluster runs as 'postgres'
    base = Path(tempfile.mkdtemp(prefix="glyphlab-pg-"))
    data = base / "data"
    prefix: list[str] = []
    if os.geteuid() == 0:  # initdb refuses to run as root: run the cluster as the postgres user
        runuser = shutil.which("runuser")
        if runuser is None:
            pytest.skip("running as root without runuser: cannot start a PostgreSQL cluster")
        try:
            import pwd

            pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no 'postgres' user to run the cluster")
        shutil.chown(base, "postgres")
        os.chmod(base, 0o700)
        prefix = [runuser, "-u", "postgres", "--"]
    port = _free_port()

    def sh(args: list[str]) -> None:
        res = subprocess.run(args, capture_output=True, text=True, timeout=120)
        if res.returncode:
            raise RuntimeError(f"{' '.join(args)} failed:\n{res.stdout}\n{res.stderr}")

    sh(prefix + [str(pg / "initdb"), "-D", str(data), "-A", "trust", "-U", "glyph", "--no-sync"])
    log = base / "log"
    sh(
        prefix
        + [
            str(pg / "pg_ctl"),
            "-D",
            str(data),
            "-l",
            str(log),
            "-w",
            "-o",
            f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -c fsync=off",
            "start",
        ]
    )
    try:
        subprocess.run(
            [str(pg / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "glyph", "glyphsearch"],
            check=True,
            capture_output=True,
        )
        yield f"postgresql://glyph@127.0.0.1:{port}/glyphsearch"
    finally:
        subprocess.run(prefix + [str(pg / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"], capture_output=True)
        shutil.rmtree(base, ignore_errors=True)


def test_two_workers_share_a_postgres_study(postgres, tmp_path):
    n = 5
    procs = []
    for i in range(2):
        # each trial sleeps 1 s, so one worker cannot finish the study while the other is still starting up
        cmd = SLOW_SEARCH + [
            "1.0",
            "--dataset",
            "digits",
            "--space",
            "svm-default",
            "--trials",
            str(n),
            "--cv",
            "2",
            "--storage",
            postgres,
            "--study",
            "shared",
            "--out",
            str(tmp_path / f"w{i}"),
            "--no-refit",
        ]
        procs.append(subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=_env()))
    outputs = [p.communicate(timeout=300)[0] for p in procs]
    for p, text in zip(procs, outputs):
        assert p.returncode == 0, text
    from glyphlab.pipeline.search.workers import _with_driver

    study = optuna.load_study(study_name="shared", storage=_with_driver(postgres))
    finished = [
        t for t in study.trials if t.state in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    ]
    assert len(finished) == n
    assert len({t.number for t in study.trials}) == len(study.trials)
    assert not [t for t in study.trials if t.state == optuna.trial.TrialState.RUNNING]
    workers = {t.user_attrs["worker"]["pid"] for t in finished}
    assert len(workers) == 2, "both workers should have run trials"
    bests = [json.loads((tmp_path / f"w{i}" / "best_params.json").read_text()) for i in range(2)]
    assert bests[0]["best_trial"] == bests[1]["best_trial"] == study.best_trial.number
    for i in range(2):  # each worker's trials.csv records every trial once
        rows = (tmp_path / f"w{i}" / "trials.csv").read_text().splitlines()[1:]
        assert len(rows) == len(study.trials)


def test_search_takes_variants_and_dataset_options(tmp_path):
    import json

    out = tmp_path / "s"
    res = _cli(
        [
            "search",
            "--dataset",
            "digits",
            "--space",
            "svm-default",
            "--trials",
            "1",
            "--cv",
            "2",
            "--no-refit",
            "--variant",
            "subset:300",
            "--out",
            str(out),
        ]
    )
    assert res.exit_code == 0, res.output
    assert "(300 train+val images)" in " ".join(res.output.split())
    assert json.loads((out / "search.json").read_text())["variants"] == "subset:300"
    bad = _cli(["search", "--dataset", "digits", "--dataset-option", "nonsense", "--out", str(tmp_path / "b")])
    assert bad.exit_code == 2, bad.output
