"""Search workers and their study storage: who runs a trial, finding trials a dead worker left RUNNING, and
the Optuna storage (SQLite in the run folder by default, or a shared ``postgresql://`` URL).

Dead workers on this machine are found at once by process id and start time; on other machines by Optuna's
heartbeat (``HEARTBEAT_GRACE_S``). Their trials are marked FAIL and their parameters asked again.
"""

from __future__ import annotations

import importlib.util
import os
import random
import socket
import time
import warnings
from pathlib import Path
from typing import Any

import optuna
import optuna.storages as S
from optuna.storages import RDBStorage, fail_stale_trials
from optuna.trial import TrialState
from sqlalchemy.engine import make_url

from glyphlab.errors import ConfigError

HEARTBEAT_INTERVAL_S = 10
HEARTBEAT_GRACE_S = 60
MAX_RETRY = 2


def _proc_start(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]  # field 22, starttime


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()[:8]
    except OSError:
        return ""


def worker_id() -> dict[str, Any]:
    pid = os.getpid()
    return {"host": socket.gethostname(), "boot": _boot_id(), "pid": pid, "start": _proc_start(pid)}


def _worker_dead(worker: dict[str, Any]) -> bool:
    """True when ``worker`` ran on this machine and that process is gone (False when unsure)."""
    if worker.get("host") != socket.gethostname() or worker.get("boot", "") != _boot_id():
        return False
    pid = int(worker.get("pid", -1))
    if pid == os.getpid():
        return False
    if Path("/proc").is_dir():
        start = _proc_start(pid)
        return start is None or (worker.get("start") is not None and start != worker.get("start"))
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def reap_dead_trials(study) -> list[int]:
    """Mark FAIL the RUNNING trials whose process died (same machine: at once; elsewhere: heartbeat grace),
    and ask their parameters again. Returns the numbers of the trials this call failed."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fail_stale_trials(study)  # other machines: no heartbeat for HEARTBEAT_GRACE_S
    retry = _retry_callback()
    storage = study._storage
    failed = []
    now = time.time()
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        worker = t.user_attrs.get("worker")
        dead = (
            _worker_dead(worker)
            if worker
            else (t.datetime_start is not None and now - t.datetime_start.timestamp() > 3 * HEARTBEAT_GRACE_S)
        )
        if not dead:
            continue
        try:
            storage.set_trial_user_attr(t._trial_id, "note", "killed: its worker process died")
            changed = storage.set_trial_state_values(t._trial_id, state=TrialState.FAIL)
        except optuna.exceptions.UpdateFinishedTrialError:  # another worker got there first
            continue
        if changed:
            failed.append(t.number)
            retry(study, storage.get_trial(t._trial_id))
    return failed


def _retry_callback():
    """Re-enqueue a dead trial's parameters (RetryHeartbeatStaleTrialCallback since Optuna 4.9)."""
    cls = getattr(S, "RetryHeartbeatStaleTrialCallback", None) or S.RetryFailedTrialCallback
    return cls(max_retry=MAX_RETRY)


def make_storage(url: str):
    url = _with_driver(url)
    engine_kwargs: dict[str, Any] = {}
    if url.startswith("sqlite"):
        engine_kwargs["connect_args"] = {"timeout": 60}
    else:
        engine_kwargs["pool_pre_ping"] = True
    for attempt in range(5):
        try:
            return RDBStorage(
                url,
                engine_kwargs=engine_kwargs,
                heartbeat_interval=HEARTBEAT_INTERVAL_S,
                grace_period=HEARTBEAT_GRACE_S,
                heartbeat_stale_trial_callback=_retry_callback(),
            )
        except ImportError as exc:
            raise ConfigError(
                f"storage {redact(url)} needs a database driver that is not installed ({exc}); "
                "for PostgreSQL: pip install psycopg2-binary"
            ) from None
        except Exception as exc:  # sqlalchemy's errors
            # workers starting together race to create the tables: the loser retries and finds them
            if attempt == 4 or "duplicate" not in str(exc).lower() and "already exists" not in str(exc).lower():
                raise ConfigError(f"cannot open the study storage {redact(url)}: {str(exc).splitlines()[0]}") from None
            time.sleep(0.5 + random.random())
    raise AssertionError("unreachable")


def _with_driver(url: str) -> str:
    """``postgresql://`` means psycopg (v3) to SQLAlchemy 2.1 and psycopg2 to older ones: use whichever is installed."""
    if url.startswith(("postgresql://", "postgres://")):
        rest = url.split("://", 1)[1]
        for module, driver in (("psycopg", "psycopg"), ("psycopg2", "psycopg2")):
            if importlib.util.find_spec(module) is not None:
                return f"postgresql+{driver}://{rest}"
        raise ConfigError(
            f"storage {redact(url)} needs a PostgreSQL driver: pip install psycopg2-binary (or 'psycopg[binary]')"
        )
    return url


def redact(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url.split("@")[-1]
