"""Samplers that continue a study instead of replaying it.

Optuna's samplers draw from one random stream seeded once, when the process starts. A search killed after
four trials and started again (or a second worker on the same study) then draws trial 4 from the stream's
start: it re-asks the points trial 0, 1, ... already scored. Here trial ``n`` draws from a stream seeded by
the search's seed and ``n`` (:func:`trial_seed`), so every trial number has its own points whichever process
runs it, and a resumed search asks what an uninterrupted one would have asked next. The grid sampler gives a
trial a grid point that no finished or running trial holds (judged by the trials' parameters, so a retried
or resumed trial never takes a point twice), chosen by the trial's seed.
"""

from __future__ import annotations

import hashlib
from typing import Any

import optuna
from optuna.samplers import GridSampler, RandomSampler, TPESampler
from optuna.trial import FrozenTrial, TrialState

from glyphlab.pipeline.search.space import SearchSpace

#: trials whose grid point counts as taken (a FAIL trial's point is asked again)
TAKEN = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)


def trial_seed(seed: int, number: int) -> int:
    """The random seed of trial ``number`` of a search seeded ``seed``."""
    return int(hashlib.sha256(f"glyphlab-search:{seed}:{number}".encode()).hexdigest()[:8], 16)


class ContinuingRandomSampler(RandomSampler):
    def __init__(self, seed: int) -> None:
        super().__init__(seed=seed)
        self.base_seed = int(seed)

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self._rng.rng.seed(trial_seed(self.base_seed, trial.number))
        super().before_trial(study, trial)


class ContinuingTPESampler(TPESampler):
    def __init__(self, seed: int, **kwargs: Any) -> None:
        super().__init__(seed=seed, **kwargs)
        self.base_seed = int(seed)

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        s = trial_seed(self.base_seed, trial.number)
        self._rng.rng.seed(s)
        self._random_sampler._rng.rng.seed(s)  # the start-up trials' sampler
        super().before_trial(study, trial)


class ContinuingGridSampler(GridSampler):
    """Optuna's GridSampler gives trial ``n < grid size`` grid point ``n`` by number, so a resumed search whose
    killed trial was retried under a new number skips a point; this one picks by what the study holds."""

    def __init__(self, space: SearchSpace, seed: int) -> None:
        super().__init__(space.grid(), seed=seed)
        self.base_seed = int(seed)
        self._index = {tuple(point): i for i, point in enumerate(self._all_grids)}

    def _taken(self, study: optuna.Study, trial: FrozenTrial) -> set[int]:
        taken: set[int] = set()
        for t in study._storage.get_all_trials(study._study_id, deepcopy=False):
            if t.number == trial.number or t.state not in TAKEN:
                continue
            key = tuple(t.params.get(name, _MISSING) for name in self._param_names)
            if key in self._index:
                taken.add(self._index[key])
            elif "grid_id" in t.system_attrs:  # running, parameters not suggested yet
                taken.add(int(t.system_attrs["grid_id"]))
            elif "fixed_params" in t.system_attrs:  # a retry: the parameters it will ask
                fixed = t.system_attrs["fixed_params"]
                key = tuple(fixed.get(name, _MISSING) for name in self._param_names)
                if key in self._index:
                    taken.add(self._index[key])
        return taken

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        if "grid_id" in trial.system_attrs or "fixed_params" in trial.system_attrs:
            return  # a retried trial asks its own parameters again
        taken = self._taken(study, trial)
        free = [i for i in range(len(self._all_grids)) if i not in taken] or list(range(len(self._all_grids)))
        # workers that start a trial at the same moment rarely pick the same free point
        self._rng.rng.seed(trial_seed(self.base_seed, trial.number))
        grid_id = int(free[0] if len(free) == 1 else self._rng.rng.choice(free))
        study._storage.set_trial_system_attr(trial._trial_id, "search_space", self._search_space)
        study._storage.set_trial_system_attr(trial._trial_id, "grid_id", grid_id)


_MISSING = object()


def make_sampler(kind: str, space: SearchSpace, seed: int, trials: int) -> optuna.samplers.BaseSampler:
    """``random``, ``grid`` or ``tpe`` (its start-up trials: half the budget, between 3 and 10)."""
    if kind == "random":
        return ContinuingRandomSampler(seed)
    if kind == "grid":
        return ContinuingGridSampler(space, seed)
    return ContinuingTPESampler(seed, n_startup_trials=max(3, min(10, trials // 2)))
