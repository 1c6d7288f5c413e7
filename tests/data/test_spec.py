"""One data spec for every config: the run, search and audit configs share DataSpec's fields and its loader,
and a config.json written before they shared it still loads to the same settings and the same images."""

import json
from dataclasses import asdict, fields

import numpy as np
import pytest

from glyphlab.data.spec import DataSpec
from glyphlab.pipeline.audit import AuditConfig
from glyphlab.pipeline.run import RunConfig, load_run_dataset

#: config.json as `glyphlab run --dataset digits --models logreg --variant subset:300 --seed 3 --param logreg.C=0.5
#: --dataset-option limit=600` wrote it before the configs shared DataSpec (commit 7b4c470)
WRITTEN_BEFORE = {
    "dataset": "digits",
    "models": ["logreg"],
    "params": {"logreg": {"C": 0.5}},
    "seed": 3,
    "val_fraction": 0.1,
    "variants": "subset:300",
    "data_dir": None,
    "dataset_options": {"limit": 600},
    "exclude": "",
    "layout": 2,
    "created": "2026-12-06T13:20:52+00:00",
    "versions": {"python": "3.11.7", "glyphlab": "0.1.0", "numpy": "2.4.6", "scikit-learn": "1.9.1"},
    "machine": {"platform": "Linux", "processor": "x86_64", "cpus": 2, "device": "cpu"},
}
#: that run's dataset.json split sizes
SPLIT_SIZES_THEN = {"train": 270, "test": 450, "val": 30}
WRITER_KEYS = {"layout", "created", "versions", "machine"}  # what run() adds beside the config itself


def test_a_run_config_written_before_loads_to_the_same_settings_and_images(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps(WRITTEN_BEFORE))
    cfg = RunConfig.from_file(path)
    assert asdict(cfg) == {k: v for k, v in WRITTEN_BEFORE.items() if k not in WRITER_KEYS}
    ds = load_run_dataset(cfg)
    assert {name: len(s) for name, s in ds.splits.items()} == SPLIT_SIZES_THEN
    assert ds.name == "digits+subset300"


def test_the_configs_write_the_same_keys_as_before():
    written = set(asdict(RunConfig()))
    assert written == set(WRITTEN_BEFORE) - WRITER_KEYS
    assert RunConfig.from_dict(asdict(RunConfig(seed=5, variants="subset:100"))) == RunConfig(
        seed=5, variants="subset:100"
    )


def test_run_search_and_audit_configs_share_the_data_fields():
    from glyphlab.pipeline.search import SearchConfig

    own = {f.name for f in fields(DataSpec)}
    for cls in (RunConfig, SearchConfig, AuditConfig):
        assert issubclass(cls, DataSpec)
        assert own <= {f.name for f in fields(cls)}
        assert {f.name: f.default for f in fields(cls) if f.name in own and f.name != "dataset_options"} == {
            f.name: f.default for f in fields(DataSpec) if f.name != "dataset_options"
        }


def test_data_fields_copy_the_options_so_two_configs_never_share_them():
    audit = AuditConfig(dataset="digits", dataset_options={"limit": 50}, variants="subset:40", seed=2)
    run_cfg = RunConfig(**audit.data_fields(), models=["logreg"])
    run_cfg.dataset_options["limit"] = 60
    assert audit.dataset_options == {"limit": 50}
    assert (run_cfg.variants, run_cfg.seed) == ("subset:40", 2)


def test_load_applies_the_variants_with_the_seed():
    a = DataSpec("digits", variants="rotate:-30:30", seed=1).load()
    b = DataSpec("digits", variants="rotate:-30:30", seed=1).load()
    c = DataSpec("digits", variants="rotate:-30:30", seed=2).load()
    plain = DataSpec("digits").load()
    assert np.array_equal(a["train"].images, b["train"].images)
    assert not np.array_equal(a["train"].images, c["train"].images)
    assert not np.array_equal(a["train"].images, plain["train"].images)
    assert a.meta["variants"][0]["name"] == "rotate"


def test_an_unknown_dataset_option_is_refused_by_name():
    from glyphlab.errors import DataError

    with pytest.raises(DataError, match="no option 'nope'"):
        DataSpec("digits", dataset_options={"nope": 1}).load()
