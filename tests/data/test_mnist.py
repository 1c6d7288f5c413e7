import functools
import gzip
import hashlib
import http.server
import threading
from pathlib import Path

import numpy as np
import pytest

from glyphlab.data import mnist
from glyphlab.errors import DataError


def test_idx_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    for dtype in (np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64):
        arr = (rng.normal(size=(3, 4, 5)) * 50).astype(dtype)
        for name in ("a.idx", "a.idx.gz"):
            p = mnist.write_idx(tmp_path / name, arr)
            back = mnist.read_idx(p)
            assert back.dtype == np.dtype(dtype) and back.shape == arr.shape
            np.testing.assert_array_equal(back, arr)


def test_idx_truncated_and_bad_magic(tmp_path):
    p = mnist.write_idx(tmp_path / "x.idx", np.arange(100, dtype=np.uint8).reshape(10, 10))
    data = p.read_bytes()
    (tmp_path / "trunc.idx").write_bytes(data[:-5])
    with pytest.raises(DataError, match=r"trunc\.idx.*truncated"):
        mnist.read_idx(tmp_path / "trunc.idx")
    (tmp_path / "hdr.idx").write_bytes(data[:6])
    with pytest.raises(DataError, match=r"hdr\.idx.*truncated IDX header"):
        mnist.read_idx(tmp_path / "hdr.idx")
    (tmp_path / "magic.idx").write_bytes(b"\x12\x34" + data[2:])
    with pytest.raises(DataError, match=r"magic\.idx.*magic number"):
        mnist.read_idx(tmp_path / "magic.idx")
    (tmp_path / "type.idx").write_bytes(b"\x00\x00\x07" + data[3:])
    with pytest.raises(DataError, match=r"type\.idx.*unknown IDX data type"):
        mnist.read_idx(tmp_path / "type.idx")
    gz = gzip.compress(data)
    (tmp_path / "cut.idx.gz").write_bytes(gz[: len(gz) // 2])
    with pytest.raises(DataError, match=r"cut\.idx\.gz.*corrupt or truncated"):
        mnist.read_idx(tmp_path / "cut.idx.gz")


def _fake_mnist(folder: Path, n_train=30, n_test=10) -> dict[str, str]:
    rng = np.random.default_rng(1)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": (np.arange(n_train) % 10).astype(np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": (np.arange(n_test) % 10).astype(np.uint8),
    }
    sums = {}
    for stem, arr in arrays.items():
        p = mnist.write_idx(folder / (stem + ".gz"), arr)
        sums[stem] = hashlib.sha256(gzip.decompress(p.read_bytes())).hexdigest()
    return sums


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def serve():
    servers = []

    def start(folder: Path) -> str:
        handler = functools.partial(_Quiet, directory=str(folder))
        srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        servers.append(srv)
        return f"http://127.0.0.1:{srv.server_address[1]}/"

    yield start
    for srv in servers:
        srv.shutdown()
        srv.server_close()


def test_download_and_verify(tmp_path, serve, monkeypatch):
    remote = tmp_path / "remote"
    sums = _fake_mnist(remote)
    monkeypatch.setattr(mnist, "CHECKSUMS", sums)
    url = serve(remote)
    cache = tmp_path / "cache"
    # a dead mirror first: the next one is tried
    paths = mnist.ensure_mnist(cache, mirrors=["http://127.0.0.1:1/", url])
    assert set(paths) == set(sums)
    for p in paths.values():
        assert p.parent == cache / "mnist" and p.name.endswith(".gz")
    assert sorted(x.name for x in (cache / "mnist").iterdir()) == sorted(s + ".gz" for s in sums)
    ds = mnist.load_mnist(cache, mirrors=[url], progress=False)
    assert len(ds["train"]) == 30 and len(ds["test"]) == 10
    assert ds.classes == [str(i) for i in range(10)]
    assert ds["train"].images.dtype == np.float32 and ds["train"].images.max() <= 1.0
    # no download needed the second time, even with no mirrors
    assert mnist.ensure_mnist(cache, mirrors=[], download=False) == paths


def test_corrupt_download_rejected(tmp_path, serve, monkeypatch):
    remote = tmp_path / "remote"
    sums = _fake_mnist(remote)
    good = (remote / "t10k-labels-idx1-ubyte.gz").read_bytes()
    bad = bytearray(gzip.decompress(good))
    bad[-1] ^= 0xFF
    (remote / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(bytes(bad)))
    monkeypatch.setattr(mnist, "CHECKSUMS", sums)
    url = serve(remote)
    cache = tmp_path / "cache"
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte\.gz.*checksum mismatch"):
        mnist.ensure_mnist(cache, mirrors=[url])
    assert not (cache / "mnist" / "t10k-labels-idx1-ubyte.gz").exists()
    assert not list((cache / "mnist").glob("*.part"))
    # a truncated (non-gzip) file is rejected the same way
    (remote / "t10k-labels-idx1-ubyte.gz").write_bytes(good[:20])
    with pytest.raises(DataError, match="corrupt or truncated"):
        mnist.ensure_mnist(cache, mirrors=[url])
    assert not (cache / "mnist" / "t10k-labels-idx1-ubyte.gz").exists()
    assert not list((cache / "mnist").glob("*.part"))


def test_missing_without_download(tmp_path):
    with pytest.raises(DataError, match="not found"):
        mnist.ensure_mnist(tmp_path, download=False)


def test_mismatching_cached_file_raises(tmp_path, monkeypatch):
    sums = _fake_mnist(tmp_path)  # files directly in data_dir (not data_dir/mnist) are found too
    monkeypatch.setattr(mnist, "CHECKSUMS", sums)
    assert mnist.ensure_mnist(tmp_path, mirrors=[])["t10k-labels-idx1-ubyte"].parent == tmp_path
    mnist.write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", np.zeros(10, dtype=np.uint8))
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte\.gz.*checksum mismatch.*Delete it"):
        mnist.ensure_mnist(tmp_path, mirrors=[])
    # load_mnist checks the very bytes it parses (one decompression per file), and refuses the same file
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte\.gz.*checksum mismatch.*Delete it"):
        mnist.load_mnist(tmp_path, mirrors=[], progress=False)


def test_uncompressed_files_accepted(tmp_path, monkeypatch):
    sums = _fake_mnist(tmp_path / "gz")
    monkeypatch.setattr(mnist, "CHECKSUMS", sums)
    (tmp_path / "mnist").mkdir()
    for stem in sums:
        (tmp_path / "mnist" / stem).write_bytes(gzip.decompress((tmp_path / "gz" / (stem + ".gz")).read_bytes()))
    ds = mnist.load_mnist(tmp_path, download=False)
    assert len(ds["train"]) == 30


def test_real_mnist(real_mnist_dir):
    from glyphlab.data import load_dataset

    ds = load_dataset("mnist", real_mnist_dir, download=False)
    assert len(ds["train"]) == 60000 and len(ds["test"]) == 10000
    assert ds.image_shape == (28, 28)
    assert np.bincount(ds["test"].labels).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    assert abs(float(ds["train"].images.mean()) - 0.13066) < 1e-4
