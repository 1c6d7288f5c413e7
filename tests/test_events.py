"""The engine's events reach the observers attached where the step started, and nowhere else."""

from __future__ import annotations

from pathlib import Path

from glyphlab.events import Event, ModelFinished, Note, RunFinished, TrialFinished, emit, observing, watched
from glyphlab.tracking import TrackerObserver


class Recorder:
    def __init__(self) -> None:
        self.events: list[Event] = []

    def on_event(self, event: Event) -> None:
        self.events.append(event)


def test_events_reach_the_attached_observers_and_nest():
    outer, inner = Recorder(), Recorder()
    emit(Note("nobody listens"))  # no observer: nothing happens, nothing fails
    assert not watched()
    with observing(outer, None):
        assert watched()
        emit(Note("one"))
        with observing(inner):
            emit(Note("two"))
        emit(Note("three"))
    emit(Note("after"))
    assert [e.text for e in outer.events] == ["one", "two", "three"]
    assert [e.text for e in inner.events] == ["two"]


def test_a_tracker_observes_models_trials_and_the_end_of_a_run(tmp_path):
    calls = []

    class Tracker:
        backend, uri = "fake", "nowhere"

        def model_finished(self, label, model_dir, metrics):
            calls.append(("model", label, Path(model_dir).name, metrics["accuracy"]))

        def trial_finished(self, number, params, value, state):
            calls.append(("trial", number, params, value, state))

        def run_finished(self, out, failed=False):
            calls.append(("run", failed))

    with observing(TrackerObserver(Tracker())):
        emit(ModelFinished("svm", tmp_path / "svm", {"accuracy": 0.9}))
        emit(TrialFinished(3, {"C": 1.0}, 0.8, "COMPLETE"))
        emit(TrialFinished(4, {"C": 2.0}, None, "FAIL", error="boom"))  # a failed trial is not tracked
        emit(RunFinished(tmp_path, failed=True))
    assert calls == [("model", "svm", "svm", 0.9), ("trial", 3, {"C": 1.0}, 0.8, "COMPLETE"), ("run", True)]
