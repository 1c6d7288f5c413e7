"""Every saved model folder has a MODEL_CARD.md with every section, listed and hashed in the manifest."""

import json

import pytest

from glyphlab.errors import ModelFileError
from glyphlab.fileio import sha256_file
from glyphlab.models.model_card import SECTIONS
from glyphlab.models.persistence import load_model, read_model_card, write_model_card
from glyphlab.models.registry import create_model


@pytest.fixture(scope="module")
def saved(digits, tmp_path_factory):
    tr = digits["train"]
    m = create_model("logreg", C=0.5).fit(tr.images[:400], tr.labels[:400], classes=digits.classes)
    return m.save(tmp_path_factory.mktemp("card") / "model")


def test_saved_model_has_a_listed_card_with_every_section(saved):
    manifest = json.loads((saved / "manifest.json").read_text())
    card = saved / "MODEL_CARD.md"
    assert manifest["files"]["MODEL_CARD.md"] == sha256_file(card)
    text = card.read_text()
    assert text.startswith("# Model card: logreg")
    headings = [line[3:] for line in text.splitlines() if line.startswith("## ")]
    assert headings == list(SECTIONS)
    assert "`C=0.5`" in text and "saved outside a glyphlab run" in text
    assert read_model_card(saved) == text
    # what it reads: one character through /prediction, a line of them through /reading, and the charset
    assert "`POST /reading`" in text and "the digits 0-9" in text and "characters side by side" in text


def test_rewritten_card_keeps_the_model_loadable_and_a_changed_one_is_refused(saved, tmp_path):
    import shutil

    copy = tmp_path / "model"
    shutil.copytree(saved, copy)
    write_model_card(copy, "# Model card: new\n")
    assert read_model_card(copy) == "# Model card: new\n"
    load_model(copy)  # the manifest's new hash matches
    (copy / "MODEL_CARD.md").write_text("# edited by hand\n")
    with pytest.raises(ModelFileError, match="does not match its manifest"):
        load_model(copy)
    with pytest.raises(ModelFileError, match="does not match its manifest"):
        read_model_card(copy)
