"""Peak memory of one request's body at the 5 MB limit, each case in a fresh process (ru_maxrss before/after).

The figures in ``glyphlab serve --help`` (``--max-concurrency``) come from here:

    python bench/request_memory.py

Cases: ``json`` — nine 512x512 images of 0/1 as JSON ``images`` (4.7 MB), parsed and validated as the server
does, then stacked as float32; ``jpeg`` — a 2000x2000 noise JPEG (the pixel limit's 4 Mpx), decoded and
prepared as an upload.
"""

from __future__ import annotations

import io
import json
import resource
import subprocess
import sys
import tempfile
from pathlib import Path


def make(folder: Path) -> None:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    images = [rng.integers(0, 2, (512, 512)).tolist() for _ in range(9)]
    (folder / "json").write_bytes(json.dumps({"images": images}, separators=(",", ":")).encode())
    buf = io.BytesIO()
    Image.fromarray((rng.random((2000, 2000)) * 255).astype(np.uint8)).convert("RGB").save(buf, "JPEG", quality=40)
    (folder / "jpeg").write_bytes(buf.getvalue())


def measure(kind: str, folder: Path) -> None:
    import numpy as np

    from glyphlab.data.images import DecodeLimits, ImageConfig, prepare_bytes
    from glyphlab.serving.limits import tune_malloc
    from glyphlab.serving.schemas import PredictionRequest

    tune_malloc()  # as a server process does
    body = (folder / kind).read_bytes()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if kind == "json":
        req = PredictionRequest.model_validate_json(body)
        x = np.stack([np.asarray(im, dtype=np.float32) for im in req.images])
    else:
        x = prepare_bytes(body, ImageConfig.mnist_style(), DecodeLimits())
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"{kind}: body {len(body) / 1e6:.2f} MB, peak memory +{(after - before) / 1024:.0f} MB ({type(x).__name__})")


if __name__ == "__main__":
    if len(sys.argv) == 3:
        measure(sys.argv[1], Path(sys.argv[2]))
    else:
        with tempfile.TemporaryDirectory() as tmp:
            make(Path(tmp))
            for case in ("json", "jpeg"):
                subprocess.run([sys.executable, __file__, case, tmp], check=True)
