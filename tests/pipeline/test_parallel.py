"""Issue 29 (10): the worker processes of a killed command exit with it instead of finishing work nobody reads."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import psutil
import pytest

PARENT = textwrap.dedent("""
    import os, sys, time
    from joblib import Parallel, delayed
    from glyphlab.pipeline.parallel import in_worker

    def fold(path):
        with open(path, "w") as f:
            f.write(str(os.getpid()))
        time.sleep(120)  # a long fit

    Parallel(n_jobs=2)(delayed(in_worker)(fold, os.path.join(sys.argv[1], f"w{i}")) for i in range(2))
""")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="adoption by init is how the death is seen")
def test_workers_exit_when_their_parent_is_killed(tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    parent = subprocess.Popen([sys.executable, "-c", PARENT, str(tmp_path)], env=env)
    try:
        deadline = time.monotonic() + 60
        while len(list(tmp_path.glob("w*"))) < 2 or any(not p.read_text() for p in tmp_path.glob("w*")):
            assert time.monotonic() < deadline and parent.poll() is None, "the workers did not start"
            time.sleep(0.1)
        workers = [psutil.Process(int(p.read_text())) for p in tmp_path.glob("w*")]
        parent.send_signal(signal.SIGKILL)
        parent.wait(10)
        gone, alive = psutil.wait_procs(workers, timeout=15)  # a watcher looks every 0.5 s
        assert not alive, f"workers {[p.pid for p in alive]} outlived their killed parent"
    finally:
        parent.kill()
        for p in tmp_path.glob("w*"):
            try:
                psutil.Process(int(p.read_text() or 0)).kill()
            except (psutil.NoSuchProcess, ValueError):
                pass
