"""``python slow_search.py SECONDS glyphlab-search-args...``: ``glyphlab search`` whose every trial first sleeps
SECONDS (after its parameters are drawn), so a test can kill a search in the middle of a trial.

The delay is this test script's monkeypatch of the scoring functions the search calls; production code has
no test hook.
"""

import sys
import time

import glyphlab.pipeline.search.study as study


def _slow(score, seconds: float):
    def slowed(*args, **kwargs):
        time.sleep(seconds)
        return score(*args, **kwargs)

    return slowed


if __name__ == "__main__":
    delay = float(sys.argv[1])
    study.cv_score = _slow(study.cv_score, delay)
    study.validation_score = _slow(study.validation_score, delay)
    from glyphlab.cli import app

    app(["search", *sys.argv[2:]])
