"""`glyphlab audit` and `glyphlab run --exclude` from the command line: results, and one-line errors."""

from typer.testing import CliRunner

from glyphlab.cli import app

runner = CliRunner()


def test_audit_then_run_without_the_issues(tmp_path):
    audit = tmp_path / "audit"
    r = runner.invoke(app, ["audit", "digits", "--model", "logreg", "--split", "train", "--out", str(audit)])
    assert r.exit_code == 0, r.output
    assert "label issues among 1,347 images" in r.output and (audit / "label_issues.csv").is_file()
    r = runner.invoke(
        app,
        [
            "run",
            "--models",
            "logreg",
            "--exclude",
            str(audit / "label_issues.csv"),
            "--out",
            str(tmp_path / "run"),
            "--no-report",
        ],
    )
    assert r.exit_code == 0, r.output
    assert (tmp_path / "run" / "audit" / "label_issues.png").is_file()


def test_bad_audit_input_is_one_line(tmp_path):
    r = runner.invoke(app, ["audit", "digits", "--model", "nosuch", "--out", str(tmp_path / "a")])
    assert r.exit_code == 2 and "unknown model 'nosuch'" in r.output and "Traceback" not in r.output
    r = runner.invoke(app, ["audit", "digits", "--split", "val", "--out", str(tmp_path / "a")])
    assert r.exit_code == 2 and "has no split 'val'" in r.output
    r = runner.invoke(
        app,
        [
            "run",
            "--models",
            "logreg",
            "--exclude",
            str(tmp_path / "none.csv"),
            "--out",
            str(tmp_path / "run"),
            "--no-report",
        ],
    )
    assert r.exit_code == 2 and "no such file" in r.output
