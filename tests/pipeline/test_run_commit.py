"""A run folder commits per model: a process killed after any write of the run leaves models that --resume
either keeps (done.json was written) or redoes, and the resumed folder is the uninterrupted run's.

The kill is a test hook, not production code: a driver process (a fresh interpreter, so no thread pool has
started before it forks) forks one child per write; the child wraps ``os.replace``, ``os.rename`` and
``shutil.rmtree`` (every file and folder of a run lands by one of them) and ``os._exit``s right after the
N-th that lands in the run folder. Figures are drawn by a cheap stand-in there (the same atomic write, a
tiny payload): this tests the commit, not Matplotlib, and keeps ~40 kills x 2 runs to seconds.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import subprocess
import sys
import traceback
import zipfile
from pathlib import Path

KILLED = 9
CONFIG = dict(
    dataset="digits",
    models=["logreg", "net=mlp"],
    dataset_options={"limit": 60},
    params={"logreg": {"max_iter": 20}, "net": {"hidden": [8], "epochs": 2, "batch_size": 64, "progress": False}},
)
CLOCKED = ("seconds", "created")  # keys ending so carry the clock, not the result


# ------------------------------------------------------------------ the driver (runs in its own interpreter)


def _fork(fn) -> int:
    """Run ``fn`` in a forked child; its exit code (0 when it returned)."""
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            fn()
            code = 0
        except BaseException:  # noqa: BLE001 - the parent reads the code; stderr says why
            traceback.print_exc()
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def _cheap_figures() -> None:
    """Figures as a few atomically written bytes that depend on what would be drawn."""
    import hashlib

    from glyphlab.evaluation import evaluate
    from glyphlab.evaluation.interpretation import Interpretation
    from glyphlab.fileio import write_bytes
    from glyphlab.models.torch import loop
    from glyphlab.pipeline import run as run_module

    def digest(*args, **kwargs) -> bytes:
        return (
            hashlib.sha256(repr([a for a in args if not isinstance(a, Path)] + sorted(kwargs.items())).encode())
            .hexdigest()
            .encode()
        )

    def fake(*args, **kwargs):
        return write_bytes(next(a for a in args if isinstance(a, Path)), digest(*args, **kwargs))

    Interpretation.plot_confusion_matrix = lambda self, *a, **k: digest("confusion", self.y_pred.tolist(), *a, **k)
    Interpretation.plot_most_confused = lambda self, *a, **k: digest("confused", self.y_pred.tolist(), *a, **k)
    evaluate.save_figure = lambda fig, path: write_bytes(path, fig)
    evaluate.plot_reliability = loop.plot_history = fake
    run_module.plot_accuracy_vs_time = lambda rows, path, *a: write_bytes(path, b"accuracy against time")


def _kill_after(out: Path, n: int | None, log: Path | None = None) -> None:
    """Count each rename or removal that lands in ``out``; die right after the ``n``-th (``log``: record them)."""
    out = out.resolve()
    count = [0]
    real_replace, real_rename, real_rmtree = os.replace, os.rename, shutil.rmtree

    def landed(target) -> None:
        if not Path(os.path.abspath(target)).is_relative_to(out):
            return
        count[0] += 1
        if log is not None:
            with open(log, "a") as fh:
                fh.write(f"{Path(os.path.abspath(target)).relative_to(out)}\n")
        if count[0] == n:
            os._exit(KILLED)

    def replace(src, dst, *a, **k):
        real_replace(src, dst, *a, **k)
        landed(dst)

    def rename(src, dst, *a, **k):
        real_rename(src, dst, *a, **k)
        landed(dst)

    def rmtree(path, *a, **k):
        real_rmtree(path, *a, **k)
        landed(path)

    os.replace, os.rename, shutil.rmtree = replace, rename, rmtree


def _normalised(path: Path, rel: str) -> object:
    """What must be identical: contents without the clock (seconds, timestamps) and zip members, not zip bytes."""
    if path.suffix == ".npz":  # zip files carry the time they were written: compare the arrays
        with zipfile.ZipFile(path) as z:
            return {n: z.read(n) for n in sorted(z.namelist())}
    if path.suffix == ".skops":  # its members are named by object ids: compare the arrays, not the names
        with zipfile.ZipFile(path) as z:
            return sorted(z.read(n) for n in z.namelist() if n.endswith(".npy"))
    if path.name == "MODEL_CARD.md":
        return [line for line in path.read_text().splitlines() if not line.startswith(("Time:", "- saved:"))]
    if path.suffix == ".json":
        obj = json.loads(path.read_text())
        if path.name == "done.json":
            return sorted(obj["files"])
        if path.name == "manifest.json":
            obj["files"] = {k: v for k, v in obj["files"].items() if not k.endswith((".skops", ".md"))}
            obj.pop("versions", None)
        if path.name == "config.json":
            obj.pop("machine", None)

        def strip(o):
            if isinstance(o, dict):
                return {k: strip(v) for k, v in o.items() if not k.endswith(CLOCKED)}
            if isinstance(o, list):
                return [strip(v) for v in o]
            return o

        return strip(obj)
    if path.suffix == ".csv" and path.name in ("leaderboard.csv", "history.csv"):
        return [
            {k: v for k, v in r.items() if not k.endswith(CLOCKED)}
            for r in csv.DictReader(io.StringIO(path.read_text()))
        ]
    if path.name == "accuracy_vs_time.png":
        return "present"
    return path.read_bytes()


def snapshot(folder: Path) -> dict[str, object]:
    """Every file (hidden ones too: a killed writer's leftovers must be gone) by path, normalised."""
    return {
        str(p.relative_to(folder)): _normalised(p, str(p.relative_to(folder)))
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def drive(base: str, only: list[int] | None = None) -> None:
    """Reference run, then for every write N (or those in ``only``): a run killed right after it, resumed; print
    what differed."""
    from glyphlab.pipeline.run import RunConfig, run
    from glyphlab.runfolder import RunFolder

    base_path = Path(base)
    cfg = RunConfig(**CONFIG)
    ref, log = base_path / "ref", base_path / "writes.txt"
    # one run here first imports (and warms) everything, so each forked child costs a run, not the imports;
    # single-threaded (the test's environment), so no thread pool exists to break in the children
    _cheap_figures()
    run(cfg, base_path / "warm-up", report=False)

    def reference():
        _kill_after(ref, None, log)
        run(cfg, ref, report=False)

    assert _fork(reference) == 0, "the reference run failed"
    writes = log.read_text().splitlines()
    expected = snapshot(ref)
    result = {"writes": writes, "files": sorted(expected), "problems": []}
    for n in only or range(1, len(writes) + 1):
        out = base_path / f"killed-{n}"

        def killed():
            _kill_after(out, n)
            run(cfg, out, report=False)

        def read_partial():  # the readers either read the partial folder or name what is missing
            from glyphlab.errors import GlyphlabError

            folder = RunFolder(out)
            folder.leaderboard_rows()
            try:
                folder.read_test_images()
            except GlyphlabError as exc:
                assert "test_images.npz" in str(exc)

        def resume():
            run(cfg, out, resume=True, report=False)

        code = _fork(killed)
        if code != KILLED:
            result["problems"].append(f"write {n} ({writes[n - 1]}): the run exited {code}, not killed")
            continue
        if (out / "models").is_dir():
            finished = RunFolder(out).models
            first_unfinished = [w for w in writes[:n] if w.endswith("done.json")]
            if len(finished) != len(first_unfinished):
                result["problems"].append(f"write {n}: {finished} count as finished, {first_unfinished} were committed")
        if _fork(read_partial) != 0:
            result["problems"].append(f"write {n} ({writes[n - 1]}): a reader failed on the killed folder")
        if _fork(resume) != 0:
            result["problems"].append(f"write {n} ({writes[n - 1]}): the resume failed")
            continue
        got = snapshot(out)
        if got != expected:
            diff = sorted(k for k in set(got) | set(expected) if got.get(k) != expected.get(k))
            result["problems"].append(f"killed after write {n} ({writes[n - 1]}): resumed folder differs in {diff}")
        shutil.rmtree(out)
    print("RESULT " + json.dumps(result))


# ------------------------------------------------------------------ the test


def test_a_run_killed_after_any_write_resumes_to_the_same_folder(tmp_path):
    env = {
        **os.environ,
        "GLYPHLAB_NUM_THREADS": "1",
        "OMP_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent), *sys.path]),
    }
    code = f"import test_run_commit as t; t.drive({str(tmp_path)!r})"
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=900)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads(lines[-1][len("RESULT ") :])
    writes = result["writes"]
    # every file of the finished run landed by a counted write, so every state between two files was tried
    landed = {w for w in writes}
    assert set(result["files"]) <= landed | {f for f in result["files"] if f.startswith("models/") and "/model/" in f}
    assert any(w == "test_images.npz" for w in writes) and sum(w.endswith("done.json") for w in writes) == 2
    assert writes.index("models/logreg/done.json") > max(
        i for i, w in enumerate(writes) if w.startswith("models/logreg/") and w != "models/logreg/done.json"
    )
    assert "models/net/checkpoint" in writes  # killed with a stale checkpoint too
    assert result["problems"] == []
