"""Two gloo ranks train a small network to the weights one process trains: the same global batch, the same
schedule (glyphlab.models.torch.ddp). 61 images in batches of 10 leave a last batch of one image, so rank 1
also takes the empty-share path. No BatchNorm and no augmentation here: the runs differ only in float
summation order (each rank's weighted half-batch loss, the gradients averaged), hence a tolerance of 1e-4 on
weights of order 0.1 to 1 after 14 Adam steps, where a wrong share or weight moves them by 1e-2 or more (measured: 3e-8 apart, 7e-2 moved)."""

import os
import subprocess
import sys
import textwrap

import numpy as np
import torch
from net_helpers import free_port

from glyphlab.models.torch.loop import TrainConfig
from glyphlab.models.torch.trainer import train

SCRIPT = textwrap.dedent("""
    import sys
    import numpy as np
    import torch
    import torch.distributed as dist
    from safetensors.torch import save_file
    from glyphlab.models.torch.loop import TrainConfig
    from glyphlab.models.torch.trainer import train
    sys.path.insert(0, sys.argv[2])
    from test_ddp_exact import data, net

    module = net()
    train(module, *data(), n_classes=3, config=TrainConfig(epochs=2, batch_size=10, lr=1e-2, progress=False))
    if dist.get_rank() == 0:
        save_file({k: v.contiguous() for k, v in module.state_dict().items()}, sys.argv[1])
""")


def data():
    rng = np.random.default_rng(3)
    y = rng.integers(0, 3, 61)
    x = rng.random((61, 8, 8), dtype=np.float32) * 0.5
    for k in range(3):
        x[y == k, 2 * k : 2 * k + 2] += 0.5
    return x, y


def net() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))


def test_two_ranks_train_the_weights_of_one_process(tmp_path):
    from safetensors.torch import load_file

    (tmp_path / "ddp.py").write_text(SCRIPT)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p), "GLYPHLAB_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port", str(free_port())]
    out = tmp_path / "ddp.safetensors"
    here = os.path.dirname(__file__)
    proc = subprocess.run(
        [*cmd, str(tmp_path / "ddp.py"), str(out), here], env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    module = net()
    train(module, *data(), n_classes=3, config=TrainConfig(epochs=2, batch_size=10, lr=1e-2, progress=False))
    two, one = load_file(str(out)), module.state_dict()
    moved = max(float((one[k] - net().state_dict()[k]).abs().max()) for k in one)
    assert moved > 1e-2  # training changed the weights, so agreeing below means something
    for k, v in one.items():
        torch.testing.assert_close(two[k], v, atol=1e-4, rtol=0)
