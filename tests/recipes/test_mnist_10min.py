"""The mnist-10min recipe (issue 31): it validates, asks for precision=auto, and runs end to end in quick mode
(skipped without real MNIST), recording the precision ``auto`` became on this machine."""

import json

from glyphlab.models.torch.loop import cpu_has_bf16
from glyphlab.recipes import load_recipe, run_recipe, to_run_config


def test_mnist_10min_recipe_quick(tmp_path, mnist_data_dir):
    recipe = load_recipe("mnist-10min")
    assert to_run_config(recipe).params["resnet-small"]["precision"] == "auto"
    assert to_run_config(recipe, quick=True).params["resnet-small"]["epochs"] == 1
    out = run_recipe("mnist-10min", tmp_path / "run", quick=True, data_dir=str(mnist_data_dir), report=False)
    manifest = json.loads((out / "models" / "resnet-small" / "model" / "manifest.json").read_text())
    assert manifest["params"]["precision"] == "auto"
    assert manifest["extra"]["precision"] == ("bf16" if cpu_has_bf16() else "fp32")
