"""glyphlab predict / export / serve through Typer's CliRunner, on PNG files written here."""

from __future__ import annotations

import json

from serving_helpers import digit_png
from typer.testing import CliRunner

from glyphlab.cli import app

runner = CliRunner()


def _write_digits(folder, digits, n=6):
    folder.mkdir()
    test = digits.splits["test"]
    for i in range(n):
        (folder / f"d{i}_{test.labels[i]}.png").write_bytes(digit_png(test.images[i]))
    return [int(v) for v in test.labels[:n]]


def test_predict_json_folder_and_files(logreg_dir, digits, tmp_path):
    labels = _write_digits(tmp_path / "imgs", digits)
    (tmp_path / "imgs" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnope")
    r = runner.invoke(app, ["predict", str(logreg_dir), str(tmp_path / "imgs"), "--json", "--top-k", "2"])
    assert r.exit_code == 1, r.output  # one file could not be read
    out = json.loads(r.stdout)
    assert out["backend"] == "onnxruntime" and out["model_id"].startswith("logreg-")
    preds = {p["file"].rsplit("/", 1)[-1]: p for p in out["predictions"]}
    assert "error" in preds["broken.png"]
    good = [p for name, p in preds.items() if name != "broken.png"]
    assert len(good) == len(labels) and all(len(p["top"]) == 2 for p in good)
    right = sum(p["label"] == int(name.split("_")[1][0]) for name, p in preds.items() if name != "broken.png")
    assert right >= len(labels) - 2
    # single files, table output, exit code 0
    files = sorted((tmp_path / "imgs").glob("d*.png"))[:2]
    r = runner.invoke(app, ["predict", str(logreg_dir), *map(str, files)])
    assert r.exit_code == 0, r.output
    assert "logreg-" in r.output and "top 3" in r.output


def test_predict_missing_inputs_fail_cleanly(logreg_dir, tmp_path):
    r = runner.invoke(app, ["predict", str(logreg_dir), str(tmp_path / "nothing.png")])
    assert r.exit_code == 2 and "no such image" in r.output
    r = runner.invoke(app, ["predict", str(tmp_path), str(tmp_path)])
    assert r.exit_code == 2 and "error" in r.output


def test_export_cli(cnn_onnx_dir, digits, tmp_path):
    out = tmp_path / "exported" / "m.onnx"
    r = runner.invoke(app, ["export", str(cnn_onnx_dir), "--onnx", str(out)])
    assert r.exit_code == 0, r.output
    assert out.is_file() and (tmp_path / "exported" / "m.onnx.json").is_file()
    r = runner.invoke(app, ["export", str(cnn_onnx_dir), "--onnx", str(tmp_path / "m.txt")])
    assert r.exit_code == 2 and ".onnx" in r.output


def test_serve_help_and_bad_model(tmp_path):
    r = runner.invoke(app, ["serve", "--help"])
    assert r.exit_code == 0 and "--port" in r.output and "--workers" in r.output
    r = runner.invoke(app, ["serve", str(tmp_path)])
    assert r.exit_code == 2 and "manifest" in r.output
