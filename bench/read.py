"""Reading handwritten numbers: glyphlab read beside Tesseract on seeded photos of MNIST test-digit strings.

    python bench/read.py --data-dir ../shared/data [--model RUN/models/cnn-small] [--n 500] [--out DIR]

Makes ``--n`` seeded photo-like JPEGs of strings of 3-8 MNIST *test* digits (:func:`string_photo`: uneven
sizes, gaps and baselines, a slight slope, touching pairs and digits broken in two, on plain, ruled or
squared paper with uneven light, a phone's shadow, ink colours, blur, noise and JPEG), reads them with
``glyphlab.reading.read`` and prints exact-string accuracy, the character error rate (edit distance /
length) and the speed (six-digit strings a second, one thread), and Tesseract's figures on the same pictures
(``--psm 7``, digits whitelist) where ``tesseract`` is installed, with the CPU and the load.
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage

from glyphlab.data.photos import INKS, PAPERS, _lines


def cpu_name() -> str:
    """The CPU's name, family and model (a virtual machine's name is often only "Intel Xeon Processor")."""
    try:
        info = {}
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            info.setdefault(key.strip(), value.strip())
        return (
            f"{info.get('model name', '?')} (family {info.get('cpu family', '?')} model {info.get('model', '?')}), "
            f"{os.cpu_count()} cores"
        )
    except OSError:
        return platform.processor() or platform.machine()


def _digit(img: np.ndarray, height: float, rng: np.random.Generator, broken: bool) -> np.ndarray:
    g = np.asarray(img, np.float32)
    if g.max() > 1.5:
        g = g / 255.0
    rows, cols = np.flatnonzero(g.max(1) > 0.1), np.flatnonzero(g.max(0) > 0.1)
    g = g[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    f = height / g.shape[0]
    size = (max(2, round(g.shape[1] * f)), max(4, round(height)))
    big = np.asarray(Image.fromarray(g, "F").resize(size, Image.Resampling.BICUBIC)).clip(0, 1)
    if rng.random() < 0.25:
        big = ndimage.grey_dilation(big, size=(2, 2))
    if broken:  # a pen lifted: a band across the digit left blank
        r = int(rng.uniform(0.25, 0.6) * big.shape[0])
        big = big.copy()
        big[r : r + max(2, round(0.06 * big.shape[0]))] = 0
    return big


def string_photo(
    digits: list[np.ndarray],
    rng: np.random.Generator,
    spans: list[tuple[int, int]] | None = None,
    inks: list[tuple[int, int, np.ndarray]] | None = None,
    touch: float = 0.15,
) -> bytes:
    """JPEG bytes of a photographed line of the glyphs ``digits`` ((h, w) floats, ink = 1), left to right;
    ``spans`` (when given) gets each glyph's (left, right, top, bottom) in the picture, for the error analysis
    and the verifier's labels (bench/train_read_verifier.py), and ``inks`` each glyph's own ink as placed (top,
    left, alpha), which tells touching glyphs' pixels apart. ``touch``: the share of gaps that are overlaps (the
    benchmark's 0.15; the verifier is trained with more, to see more touching pairs)."""
    h = rng.uniform(34, 60)
    slope = np.tan(np.deg2rad(rng.uniform(-4, 4)))
    placed, x = [], 0.0
    for i, d in enumerate(digits):
        g = _digit(d, h * rng.uniform(0.85, 1.15), rng, broken=rng.random() < 0.08)
        if i:
            x += h * (-rng.uniform(0.02, 0.10) if rng.random() < touch else rng.uniform(0.04, 0.40))
        placed.append((g, x, x * slope + h * rng.uniform(-0.07, 0.07) + (h - g.shape[0])))
        x += g.shape[1]
    my = h * rng.uniform(0.4, 0.9)
    mx = h * rng.uniform(0.3, 0.9)
    ys = [p[2] for p in placed]
    y0 = min(ys)
    H = int(max(p[2] + p[0].shape[0] for p in placed) - y0 + 2 * my)
    W = int(x + 2 * mx)
    alpha = np.zeros((H, W), np.float32)
    for g, gx, gy in placed:
        t, l = int(round(gy - y0 + my)), int(round(gx + mx))
        if spans is not None:
            spans.append((l, min(W, l + g.shape[1]), t, min(H, t + g.shape[0])))
        if inks is not None:
            inks.append((t, l, g[: H - t, : W - l]))
        alpha[t : t + g.shape[0], l : l + g.shape[1]] = np.maximum(
            alpha[t : t + g.shape[0], l : l + g.shape[1]], g[: H - t, : W - l]
        )
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    paper = np.array(PAPERS[rng.choice(list(PAPERS), p=[0.4, 0.3, 0.15, 0.15])]) * rng.uniform(0.9, 1.02)
    fibre = ndimage.gaussian_filter(rng.normal(0, 1, (H, W)), rng.uniform(1.0, 3.0)).astype(np.float32)
    page = paper[None, None, :] * (1 + 0.025 * fibre / (fibre.std() + 1e-6))[..., None]
    ruling = str(rng.choice(["plain", "ruled", "squared"], p=[0.4, 0.4, 0.2]))
    tilt = np.deg2rad(rng.uniform(-2, 2))
    v = -xx * np.sin(tilt) + yy * np.cos(tilt)
    u = xx * np.cos(tilt) + yy * np.sin(tilt)
    lines = np.zeros((H, W), np.float32)
    step = h * rng.uniform(0.5, 1.2)
    if ruling != "plain":
        lines = _lines(v, step, rng.uniform(0, step), rng.uniform(0.6, 1.5))
        if ruling == "squared":
            lines = np.maximum(lines, _lines(u, step, rng.uniform(0, step), rng.uniform(0.6, 1.5)))
    line_colour = np.array((0.45, 0.62, 0.88) if rng.random() < 0.6 else (0.55, 0.55, 0.58))
    mix = (rng.uniform(0.3, 0.8) * lines)[..., None]
    page = page * (1 - mix) + line_colour * page.mean() * mix
    ink = str(rng.choice(list(INKS), p=[0.4, 0.3, 0.15, 0.1, 0.05]))
    a = alpha.clip(0, 1) ** rng.uniform(0.7, 1.3) * (
        rng.uniform(0.75, 1.0) if ink != "pencil" else rng.uniform(0.65, 0.85)
    )
    img = page * (1 - a[..., None]) + np.array(INKS[ink])[None, None, :] * a[..., None]
    ang = rng.uniform(0, 2 * np.pi)
    light = 1 + rng.uniform(0.0, 0.3) * (np.cos(ang) * (xx / W - 0.5) + np.sin(ang) * (yy / H - 0.5))
    if rng.random() < 0.4:  # a phone's shadow with a soft edge
        a2 = rng.uniform(0, 2 * np.pi)
        d = np.cos(a2) * (xx - rng.uniform(0.2, 0.8) * W) + np.sin(a2) * (yy - rng.uniform(0.2, 0.8) * H)
        light *= 1 - rng.uniform(0.2, 0.45) * (1 / (1 + np.exp(-d / rng.uniform(1.0, 0.1 * H))))
    img = img * (light * rng.uniform(0.85, 1.05))[..., None]
    img = ndimage.gaussian_filter(img, (rng.uniform(0.2, 1.0),) * 2 + (0,))
    img = img + rng.normal(0, rng.uniform(0.005, 0.02), img.shape)
    buf = io.BytesIO()
    Image.fromarray((img.clip(0, 1) * 255).round().astype(np.uint8), "RGB").save(
        buf, "JPEG", quality=int(rng.integers(55, 91))
    )
    return buf.getvalue()


def make_strings(
    images: np.ndarray, labels: np.ndarray, n: int, seed: int, lengths=(3, 8), spans=None, inks=None, touch=0.15
):
    """``n`` (jpeg bytes, text) pairs of strings of MNIST digits drawn from ``images`` (seeded); ``spans`` and
    ``inks`` (lists, when given) get each picture's glyph boxes and glyph inks (see :func:`string_photo`)."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        k = int(rng.integers(lengths[0], lengths[1] + 1))
        idx = rng.integers(0, len(images), k)
        cols: list[tuple[int, int]] = []
        placed: list = []
        jpeg = string_photo([images[i] for i in idx], rng, cols, placed, touch)
        out.append((jpeg, "".join(str(int(labels[i])) for i in idx)))
        if spans is not None:
            spans.append(cols)
        if inks is not None:
            inks.append(placed)
    return out


def cut_right(box: tuple[int, int, int, int], span: tuple[int, int]) -> bool:
    """A character's box (top, left, bottom, right) is over its written glyph's columns ``span`` (intersection
    over union > 0.5): its cut is right, whatever label it is read as."""
    inter = max(0, min(box[3], span[1]) - max(box[1], span[0]))
    return inter > 0.5 * (max(box[3], span[1]) - min(box[1], span[0]))


def error_kinds(readings, truth: list[str], spans: list[list[tuple[int, int]]]) -> tuple[dict[str, int], float]:
    """Each misread string's kind: ``classification`` (one box per glyph, each over its glyph: a right cut read
    as the wrong character), ``merged`` (fewer characters than glyphs), ``split`` (more), ``wrong cut`` (as
    many, a box off its glyph), ``several lines``; and the accuracy of the characters whose cut was right."""
    from collections import Counter

    kinds: Counter = Counter()
    right = total = 0
    for r, t, cols in zip(readings, truth, spans):
        cut = len(r.lines) == 1 and len(r.chars) == len(t) and all(cut_right(c.box, s) for c, s in zip(r.chars, cols))
        if cut:
            right += sum(c.label == ch for c, ch in zip(r.chars, t))
            total += len(t)
        if r.text == t:
            continue
        if len(r.lines) > 1:
            kinds["several lines"] += 1
        elif cut:
            kinds["classification"] += 1
        else:
            n = len(r.chars)
            kinds["merged" if n < len(t) else "split" if n > len(t) else "wrong cut"] += 1
    return dict(kinds.most_common()), right / max(1, total)


def edit_distance(a: str, b: str) -> int:
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def score(pairs: list[tuple[str, str]]) -> tuple[float, float]:
    """Exact-string accuracy and character error rate (total edits / total characters) of (truth, read) pairs."""
    exact = float(np.mean([t == r for t, r in pairs]))
    cer = sum(edit_distance(t, r) for t, r in pairs) / max(1, sum(len(t) for t, _ in pairs))
    return exact, cer


def tesseract(files: list[Path]) -> tuple[list[str], float] | None:
    exe = shutil.which("tesseract")
    if exe is None:
        return None
    texts, t0 = [], time.perf_counter()
    for f in files:
        out = subprocess.run(
            [exe, str(f), "stdout", "--psm", "7", "-c", "tessedit_char_whitelist=0123456789"],
            capture_output=True,
            text=True,
            env={**os.environ, "OMP_THREAD_LIMIT": "1"},
        )
        texts.append("".join(c for c in out.stdout if c.isdigit()))
    return texts, len(files) / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data-dir", type=Path, default=Path("../shared/data"))
    ap.add_argument("--model", type=Path, default=None, help="an MNIST-trained glyph model folder")
    ap.add_argument("--n", type=int, default=500)
    ap.add_argument("--seed", type=int, default=28)
    ap.add_argument("--out", type=Path, default=None, help="keep the pictures and a labels.csv here")
    ap.add_argument("--no-tesseract", action="store_true")
    ap.add_argument("--analyse", action="store_true", help="print the misreads' kinds (segmentation or class)")
    ap.add_argument("--no-verify", action="store_true", help="read without the learned verifier (the baseline)")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(1)
    from glyphlab.data.images import ImageConfig
    from glyphlab.data.mnist import load_mnist
    from glyphlab.reading import read
    from glyphlab.serving.predictor import Predictor

    if args.model is None:
        sys.exit("--model MODEL: an MNIST-trained model folder (glyphlab run --dataset mnist --models cnn-small)")
    predictor = Predictor(args.model, backend="native", threads=1)
    if not predictor.image_config.clean:  # a version-1 record: read with today's clean MNIST-style config
        predictor.image_config = ImageConfig.mnist_style(predictor.input_shape)
    ds = load_mnist(args.data_dir / "mnist", download=False, progress=False)
    test_x, test_y = _test_split(ds)
    spans: list = []
    pairs = make_strings(test_x, test_y, args.n, args.seed, spans=spans)
    out = Path(args.out or tempfile.mkdtemp(prefix="glyphlab-read-"))
    out.mkdir(parents=True, exist_ok=True)
    files = []
    for i, (data, _text) in enumerate(pairs):
        f = out / f"{i:04d}.jpg"
        f.write_bytes(data)
        files.append(f)
    (out / "labels.csv").write_text("file,text\n" + "".join(f"{f.name},{t}\n" for f, (_, t) in zip(files, pairs)))
    verify = not args.no_verify
    read(predictor, [files[0]], verify=verify)  # warm
    t0 = time.process_time()
    readings = read(predictor, files, verify=verify)
    cpu = time.process_time() - t0
    texts = [r.text for r in readings]
    truth = [t for _, t in pairs]
    exact, cer = score(list(zip(truth, texts)))
    six = [f for f, t in zip(files, truth) if len(t) == 6]
    t0 = time.process_time()
    read(predictor, six, verify=verify)
    six_rate = len(six) / (time.process_time() - t0)
    load = os.getloadavg()
    print(f"bench/read.py: {args.n} photos of strings of 3-8 MNIST test digits (seed {args.seed}), {out}")
    print(f"CPU {cpu_name()}, load {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}; one thread, process time")
    print(
        f"glyphlab read ({predictor.model_name}{'' if verify else ', no verifier'}): exact {exact:.3f}, CER {100 * cer:.2f} %, "
        f"{args.n / cpu:.0f} strings/s (all), {six_rate:.0f} six-digit strings/s"
    )
    if args.analyse:
        kinds, per_char = error_kinds(readings, truth, spans)
        print(
            f"misreads by kind: {', '.join(f'{k} {v}' for k, v in kinds.items())}; characters cut right and read "
            f"right: {per_char:.4f}"
        )
    wrong = [(f.name, t, r) for f, t, r in zip(files, truth, texts) if t != r]
    for name, t, r in wrong[:12]:
        print(f"  {name}: {t} read {r}")
    if args.no_tesseract:
        return
    tess = tesseract(files)
    if tess is None:
        print("tesseract: not installed (apt-get install tesseract-ocr): skipped")
        return
    t_texts, rate = tess
    t_exact, t_cer = score(list(zip(truth, t_texts)))
    print(
        f"tesseract --psm 7, digits: exact {t_exact:.3f}, CER {100 * t_cer:.2f} %, {rate:.1f} strings/s "
        f"(wall, OMP_THREAD_LIMIT=1)"
    )


def _test_split(ds):
    """The MNIST test images (ink = 1 floats) and labels."""
    split = ds.splits["test"]
    return split.images, split.labels


if __name__ == "__main__":
    main()
