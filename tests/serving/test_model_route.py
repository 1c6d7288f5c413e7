"""GET /model serves the model card (Accept: text/markdown) and carries it in its JSON."""

from fastapi.testclient import TestClient

from glyphlab.serving.app import ServeSettings, create_app


def test_model_serves_its_card(logreg_dir):
    with TestClient(create_app(logreg_dir, ServeSettings(backend="native"))) as client:
        r = client.get("/model", headers={"Accept": "text/markdown"})
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/markdown")
        assert r.text.startswith("# Model card: logreg") and "## Limits" in r.text
        body = client.get("/model").json()
        assert body["model_card"] == r.text and body["manifest"]["model"] == "logreg"


def test_model_without_card_is_a_clear_404(logreg_dir, tmp_path):
    import json
    import shutil

    copy = tmp_path / "old"
    shutil.copytree(logreg_dir, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    del manifest["files"]["MODEL_CARD.md"]
    (copy / "manifest.json").write_text(json.dumps(manifest))
    (copy / "MODEL_CARD.md").unlink()
    with TestClient(create_app(copy, ServeSettings(backend="native"))) as client:
        r = client.get("/model", headers={"Accept": "text/markdown"})
        assert r.status_code == 404 and "no MODEL_CARD.md" in r.json()["detail"]
        assert client.get("/model").json()["model_card"] is None


def test_model_withholds_paths_and_versions_unless_told(logreg_dir, tmp_path):
    """Issue 29 (7): /model told strangers the absolute paths of the files, the exact library versions and the
    training data's path from the card; `--expose-details` serves them."""
    import shutil

    from glyphlab.models.persistence import write_model_card

    copy = tmp_path / "served"
    shutil.copytree(logreg_dir, copy)
    write_model_card(copy, "# Model card: logreg\n\n- dataset: **twoclass** (/home/alice/secret/twoclass)\n")
    with TestClient(create_app(copy, ServeSettings())) as client:
        body = client.get("/model").text
        card = client.get("/model", headers={"Accept": "text/markdown"}).text
        for told in (body, card):
            assert "/home/alice" not in told and str(tmp_path) not in told, told
        assert "versions" not in client.get("/model").json()["manifest"]
        assert "- dataset: **twoclass** ([path withheld])" in card
    with TestClient(create_app(copy, ServeSettings(expose_details=True))) as client:
        body = client.get("/model").json()
        assert "/home/alice/secret/twoclass" in body["model_card"] and body["manifest"]["versions"]["python"]
    from glyphlab.serving.routes import public_details, redact_paths

    kept = "accuracy / F1, 1/2, models/NAME, https://example.org/a/b"
    assert redact_paths(kept) == kept and redact_paths("see C:\\data\\x.png") == "see [path withheld]"

    assert public_details({"onnx": str(copy / "model.onnx")})["onnx"] == "model.onnx"  # its name, not where it lies
