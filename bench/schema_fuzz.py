"""schemathesis (every check) against `glyphlab serve`: how many schema-valid requests the server refuses, and 5xx.

    python bench/schema_fuzz.py [MODEL] [--st PATH] [-n 100] [--seed 1]

MODEL defaults to a logreg trained here on scikit-learn's digits (`glyphlab run --models logreg`, a few seconds).
schemathesis is no glyphlab dependency (it pins its own hypothesis and jsonschema): install it in a virtual
environment of its own (`python -m venv st && st/bin/pip install schemathesis`) and pass `--st st/bin/st`, or
have `st` on PATH; without it the bench says so and exits 0.

Three runs against one server on 127.0.0.1 (a free port), the same seed:

1. ``--mode all -c all``: every check, positive and negative data. Prints the 5xx answers (from the HAR report),
   schemathesis's own acceptance statistic (``valid_rates`` in its JSON report: positive cases accepted, or
   rejected with a 4xx) and the failures by code.
2. ``--mode positive``: only schema-valid requests, each answer classified from the HAR report (2xx accepted,
   or the refusal's ``type``/message). The share of "valid but rejected" is printed for all of them, then
   without the two kinds no schema can foresee (:data:`INEXPRESSIBLE`): blank images (schemathesis sends its
   built-in 1x1 PNG/JPEG/GIF/WEBP for image uploads, and a 1x1 image holds no glyph: 422 ``no_ink``, the 422's
   documented example) and bytes that are no image of their declared media type (JSON Schema's ``binary`` is
   any bytes).
3. The same with the hook in schemathesis_hooks/, which makes each positive JSON image rectangular: equal rows
   are said in the schema's words (``glyphlab.serving.schemas.image_schema`` says why not in its keywords), so
   run 2 counts the ragged images schemathesis draws, and run 3 what is left once it knows that rule.
"""

from __future__ import annotations

import argparse
import collections
import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from serving_common import HOST, cpu_model, free_port, start_server, stop_server


def find_st(given: str | None) -> str | None:
    """The schemathesis CLI: --st, else `st` on PATH."""
    if given:
        return given if Path(given).exists() else None
    return shutil.which("st")


def digits_logreg(tmp: Path) -> str:
    """A logreg on scikit-learn's digits, saved by `glyphlab run` (the model the issue's attack used)."""
    out = tmp / "run"
    cmd = [sys.executable, "-m", "glyphlab", "run", "--models", "logreg", "--out", str(out), "--no-report"]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return str(out / "models" / "logreg")


HOOKS = Path(__file__).parent / "schemathesis_hooks"


def run_st(st: str, url: str, mode: str, args: argparse.Namespace, report_dir: Path, rectangles: bool = False) -> dict:
    """One schemathesis run (with ``rectangles``, its positive JSON images made rectangular by the hook in
    schemathesis_hooks/); returns its JSON report and the HAR entries."""
    cmd = [st, "run", f"{url}/openapi.json", "-c", "all", "--mode", mode, "-n", str(args.n), "--seed", str(args.seed)]
    cmd += ["--continue-on-failure", "--report", "json,har", "--report-dir", str(report_dir)]
    env = dict(os.environ)
    if rectangles:
        env.update(SCHEMATHESIS_HOOKS="glyphlab_rectangles", PYTHONPATH=str(HOOKS))
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    (report_dir / "st.log").write_text(proc.stdout + proc.stderr)
    reports = {kind: glob.glob(str(report_dir / f"{kind}-*.json")) for kind in ("json", "har")}
    if not reports["json"] or not reports["har"]:
        raise SystemExit(
            f"schemathesis wrote no report (exit {proc.returncode}): {(proc.stdout + proc.stderr)[-1500:]}"
        )
    return {
        "report": json.loads(Path(reports["json"][0]).read_text()),
        "entries": json.loads(Path(reports["har"][0]).read_text())["log"]["entries"],
    }


def refusal_kind(entry: dict) -> str:
    """'accepted' for a 2xx, else the status and the refusal's ``type`` (or the start of its message)."""
    status = entry["response"]["status"]
    if 200 <= status < 300:
        return "accepted"
    text = entry["response"].get("content", {}).get("text", "")
    try:
        detail = json.loads(text).get("detail")
    except (ValueError, AttributeError):
        return f"{status} (not JSON)"
    if isinstance(detail, list) and detail and isinstance(detail[0], dict):
        if "same length" in str(detail[0].get("msg", "")):
            return f"{status} ragged"  # rows of unequal length: said in the schema's words, not its keywords
        return f"{status} {detail[0].get('type', '?')}"
    if str(detail).startswith("not a readable image"):
        return f"{status} undecodable"
    return f"{status} {str(detail)[:48]}"


def valid_rates(report: dict) -> tuple[int, int]:
    """schemathesis's own count of positive cases: (accepted, total) over every operation and phase."""
    accepted = total = 0
    for phases in report.get("valid_rates", {}).values():
        for rate in phases.values():
            accepted += rate["accepted"]
            total += rate["accepted"] + rate["unreachable"] + rate["conflicts"] + rate["rejected"]
    return accepted, total


def share(part: int, whole: int) -> str:
    return f"{part}/{whole} = {100.0 * part / whole:.1f} %" if whole else "0/0"


def report_all(result: dict) -> None:
    rep = result["report"]
    fives = [e for e in result["entries"] if e["response"]["status"] >= 500]
    accepted, total = valid_rates(rep)
    print(f"run 1, --mode all, every check: {rep['test_cases']['generated']} cases, {len(result['entries'])} requests")
    print(f"  5xx answers: {len(fives)}")
    print(f"  schemathesis valid_rates: schema-valid cases rejected {share(total - accepted, total)}")
    for failure in rep.get("failures", []):
        print(f"  failure {failure['code']} {failure['title']}: {failure['count']} unique")


#: refusals of schema-valid requests that no JSON Schema can foresee, and why
INEXPRESSIBLE = {
    "no_ink": "blank images (422 no_ink: schemathesis' built-in 1x1 samples; ink is in the pixels, not the shape)",
    "undecodable": "bytes that are no image of their declared media type (400; JSON Schema cannot read a file)",
}


def report_positive(result: dict, title: str) -> float:
    """Prints a positive run's answers by kind and the rejected shares, with and without the refusals no schema
    can foresee (:data:`INEXPRESSIBLE`); returns the share without them."""
    kinds = collections.Counter(refusal_kind(e) for e in result["entries"])
    total = sum(kinds.values())
    rejected = total - kinds["accepted"]
    accepted, st_total = valid_rates(result["report"])
    print(f"{title}: {total} requests, answers by kind:")
    for kind, n in kinds.most_common():
        print(f"  {n:5d}  {kind}")
    print(f"  schema-valid but rejected: {share(rejected, total)} (schemathesis valid_rates: ", end="")
    print(f"{share(st_total - accepted, st_total)})")
    left, whole = rejected, total
    for name, why in INEXPRESSIBLE.items():
        n = sum(c for k, c in kinds.items() if k.endswith(f" {name}"))
        left, whole = left - n, whole - n
        print(f"  without {n} {why}: {share(left, whole)}")
    return left / max(1, whole)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", nargs="?", help="a saved model folder (default: a logreg on digits, trained here)")
    ap.add_argument("--st", help="the schemathesis CLI (default: `st` on PATH)")
    ap.add_argument("-n", type=int, default=100, help="schemathesis --max-examples per operation")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    st = find_st(args.st)
    if st is None:
        print("schemathesis not found: python -m venv st && st/bin/pip install schemathesis, then --st st/bin/st")
        return
    with tempfile.TemporaryDirectory() as tmp:
        model = args.model or digits_logreg(Path(tmp))
        port = free_port()
        proc = start_server(model, port)
        try:
            url = f"http://{HOST}:{port}"
            print(
                f"schemathesis against {model} on {url}, -n {args.n} --seed {args.seed}; {cpu_model()}, load {os.getloadavg()[0]:.1f}"
            )
            report_all(run_st(st, url, "all", args, Path(tmp) / "all"))
            report_positive(run_st(st, url, "positive", args, Path(tmp) / "positive"), "run 2, --mode positive")
            rect = run_st(st, url, "positive", args, Path(tmp) / "rect", rectangles=True)
            report_positive(rect, "run 3, --mode positive, JSON images made rectangular (schemathesis_hooks/)")
        finally:
            stop_server(proc)


if __name__ == "__main__":
    main()
