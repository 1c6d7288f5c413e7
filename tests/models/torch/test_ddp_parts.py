"""The pieces of data-parallel training that need no second process: torchrun's environment read, each rank's
share of a batch and its loss weight, the cores per rank, and the silence of ranks other than 0."""

import torch

from glyphlab import events
from glyphlab.models.torch import usable_cores
from glyphlab.models.torch.ddp import DataParallel
from glyphlab.models.torch.world import World, data_parallel, local_only, world

TORCHRUN = {"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2", "MASTER_ADDR": "h"}


def _torchrun_env(monkeypatch) -> None:
    for k, v in {**TORCHRUN, "MASTER_PORT": "29500"}.items():
        monkeypatch.setenv(k, v)


def test_a_plain_process_is_rank_0_of_1(monkeypatch):
    for k in TORCHRUN:
        monkeypatch.delenv(k, raising=False)
    assert world() == World() and world().is_main and not data_parallel()


def test_torchrun_environment_is_read_and_local_only_turns_data_parallel_off(monkeypatch):
    _torchrun_env(monkeypatch)
    assert world() == World(rank=1, size=2, local_rank=1, local_size=2) and not world().is_main
    assert data_parallel()
    with local_only():
        assert not data_parallel()
    assert data_parallel()


def test_shares_cover_the_batch_and_their_weighted_losses_average_to_the_batch_mean():
    idx = torch.arange(10, 15)  # an odd batch: ranks get 3 and 2 images
    losses = torch.tensor([0.5, 1.0, 2.0, 4.0, 8.0])[idx - 10]
    shares = [DataParallel(World(rank=r, size=2)).shard(idx) for r in range(2)]
    assert sorted(torch.cat([s[0] for s in shares]).tolist()) == idx.tolist()
    # DDP averages the ranks' gradients: sum(weight_r * mean_r) / size must be the whole batch's mean
    averaged = sum(w * losses[mine - 10].mean() for mine, _, w in shares) / 2
    assert torch.isclose(averaged, losses.mean())


def test_a_rank_without_an_image_steps_on_one_with_weight_0():
    mine, real, weight = DataParallel(World(rank=1, size=2)).shard(torch.tensor([7]))
    assert mine.tolist() == [7] and real == 0 and weight == 0.0


def test_ranks_on_one_machine_share_its_cores(monkeypatch):
    monkeypatch.delenv("GLYPHLAB_NUM_THREADS", raising=False)
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    alone = usable_cores()
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    assert usable_cores() == max(1, alone // 2)


def test_ranks_other_than_0_emit_nothing(monkeypatch):
    _torchrun_env(monkeypatch)
    assert events._other_rank()
    got = []

    class Collect:
        def on_event(self, event):
            got.append(event)

    with events.observing(Collect()):
        monkeypatch.setattr(events, "_SILENT", True)
        assert not events.watched()
        events.emit(events.Note("from rank 1"))
        monkeypatch.setattr(events, "_SILENT", False)
        events.emit(events.Note("from rank 0"))
    assert [e.text for e in got] == ["from rank 0"]
