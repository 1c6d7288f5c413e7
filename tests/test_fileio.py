import json

import numpy as np
import pytest

from glyphlab.fileio import atomic_open, atomic_path, write_csv, write_json


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "metrics.json"
    write_json(target, {"accuracy": 0.5})
    with pytest.raises(RuntimeError):
        with atomic_open(target, "w") as fh:
            fh.write('{"accuracy": 0.9')  # half a file...
            raise RuntimeError("killed")  # ...and the writer dies
    assert json.loads(target.read_text()) == {"accuracy": 0.5}
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]


def test_numpy_and_named_writers_go_through_the_same_rename(tmp_path):
    with atomic_open(tmp_path / "a.npz", "wb") as fh:
        np.savez_compressed(fh, x=np.arange(3))
    with np.load(tmp_path / "a.npz") as z:  # np.savez on a file object adds no second ".npz"
        assert z["x"].tolist() == [0, 1, 2]
    with atomic_path(tmp_path / "b.onnx") as tmp:
        assert tmp.suffix == ".onnx" and tmp.parent == tmp_path and not (tmp_path / "b.onnx").exists()
        tmp.write_bytes(b"graph")
    assert (tmp_path / "b.onnx").read_bytes() == b"graph"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.npz", "b.onnx"]


def test_csv_and_json_writers(tmp_path):
    write_csv(tmp_path / "t.csv", [{"a": 1, "b": 2, "extra": 3}], columns=["a", "b"])
    assert (tmp_path / "t.csv").read_text().splitlines() == ["a,b", "1,2"]
    write_json(tmp_path / "n.json", {"v": np.float32(0.5), "t": (1, 2), "p": tmp_path})
    assert json.loads((tmp_path / "n.json").read_text()) == {"v": 0.5, "t": [1, 2], "p": str(tmp_path)}
    with pytest.raises(ValueError, match="mode"):
        with atomic_open(tmp_path / "x", "a"):
            pass


def test_atomic_writes_keep_the_umask_modes_not_mkstemps(tmp_path):
    """mkstemp makes 0600 files: a run folder mounted into a container (another uid) must stay readable."""
    import os
    import stat

    from glyphlab.fileio import atomic_path, write_text

    old = os.umask(0o022)
    try:
        write_text(tmp_path / "a.json", "{}")
        with atomic_path(tmp_path / "b.onnx") as tmp:
            tmp.write_bytes(b"graph")
    finally:
        os.umask(old)
    assert {stat.S_IMODE((tmp_path / n).stat().st_mode) for n in ("a.json", "b.onnx")} == {0o644}
