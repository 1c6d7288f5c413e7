"""The training-config contract: TrainConfig/AugmentConfig hold every training default, a net adds only its
architecture parameters and the training overrides it declares, and a model's params map back onto the configs."""

from dataclasses import fields

import pytest

from glyphlab.models.nets import CNNSmall, TorchModel
from glyphlab.models.registry import MODELS, list_models
from glyphlab.models.torch.augment import AugmentConfig
from glyphlab.models.torch.loop import TrainConfig
from glyphlab.models.torch.params import NOT_PARAMETERS, train_config, training_defaults


def test_every_net_takes_every_training_parameter_with_the_configs_default_unless_it_overrides_it():
    base = training_defaults()
    assert base["epochs"] == TrainConfig.epochs and base["rotation"] == AugmentConfig.rotation
    assert base["scale"] == list(AugmentConfig.scale) and base["augment"] is False
    assert set(base) == (
        {f.name for f in fields(TrainConfig)} | {f.name for f in fields(AugmentConfig)}
    ) - NOT_PARAMETERS | {"augment"}
    nets = [m for m in list_models() if issubclass(m.cls, TorchModel)]
    assert {"mlp", "cnn-small", "cnn-deep", "resnet-small"} <= {m.name for m in nets}
    for spec in nets:
        cls = spec.cls
        overrides = {k for klass in cls.__mro__ for k in klass.__dict__.get("training", {})}
        for key, value in base.items():
            assert key in cls.defaults, (spec.name, key)
            if key not in overrides:
                assert cls.defaults[key] == value, (spec.name, key)
        architecture = set(cls.defaults) - set(base)
        assert architecture == {k for klass in cls.__mro__ for k in klass.__dict__.get("architecture", {})}


def test_a_variant_is_a_subclass_that_overrides_a_few_training_defaults():
    class Fast(CNNSmall):  # what a cnn-fast model declares
        training = {"epochs": 1, "lr": 1e-2}

    assert Fast.defaults["epochs"] == 1 and Fast.defaults["lr"] == 1e-2
    assert Fast.defaults["optimizer"] == "adam" and Fast.defaults["dropout"] == 0.5  # inherited from cnn-small
    assert MODELS["cnn-small"].cls.defaults["epochs"] == 12  # the parent is untouched
    with pytest.raises(TypeError, match="epoch"):

        class Typo(CNNSmall):
            training = {"epoch": 1}

    with pytest.raises(TypeError, match="architecture parameters"):

        class Clash(CNNSmall):
            architecture = {"lr": 1.0}


def test_params_map_back_onto_the_configs():
    params = {**MODELS["cnn-small"].cls.defaults, "augment": True, "scale": 0.2, "rotation": 5, "dropout": 0.1}
    cfg = train_config(params, patience=None)
    assert cfg.optimizer == "adam" and cfg.lr == 2e-3 and cfg.patience is None
    assert cfg.augment == AugmentConfig(rotation=5.0, scale=(0.8, 1.2))
    assert train_config({**params, "augment": False}).augment is None
    assert AugmentConfig.from_params({}) == AugmentConfig()  # nothing given: the config's own defaults
