"""Phone-photo / scan pictures of handwritten MNIST test digits, made independently of bench/photos.py.

    python bench/indep_photos.py --data-dir /work/shared/data --out FOLDER --n 1000 --seed 7 [--start 5000]

Each chosen test digit is drawn as ink on paper and "photographed": RGB JPEG, 90-200 px a side (not always
square); paper white, cream, grey, sticky-note yellow or recycled (with specks), with texture; plain, ruled
(blue/grey lines, sometimes a red margin), squared, dotted, or the boxes of a form round the digit, the lines
slightly tilted; ink black, blue, dark blue, red, green or grainy pencil, strokes from a thin ballpoint to a thick
marker; the digit 30-75 % of the frame height, off-centre, rotated up to +-12 deg, a mild perspective; sometimes a
faint mirrored digit showing through from the back; a lighting gradient, vignetting, a hard or soft shadow edge or
a finger-shaped shadow, a colour cast; gaussian or slight motion blur, sensor noise, JPEG quality 50-92. About one
in five is a flat scan (no perspective, even light). Nothing covers the digit, and each picture is checked so that
its ink stays clearly darker than the paper round it. Writes FOLDER/<label>/<index>.jpg and FOLDER/labels.csv
(file,label); --sheet PNG also writes a contact sheet of the first 40. Each picture depends only on (seed, index).
"""

from __future__ import annotations

import argparse
import gzip
import time
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage as ndi

PAPERS = {
    "white": (0.95, 0.95, 0.93),
    "cream": (0.96, 0.92, 0.81),
    "grey": (0.80, 0.80, 0.78),
    "sticky": (0.99, 0.91, 0.50),
    "recycled": (0.84, 0.80, 0.71),
}
INKS = {
    "black": (0.07, 0.07, 0.09),
    "blue": (0.13, 0.24, 0.66),
    "darkblue": (0.08, 0.10, 0.33),
    "red": (0.74, 0.10, 0.12),
    "green": (0.07, 0.42, 0.18),
    "pencil": (0.28, 0.28, 0.31),
}
LUMA = np.array([0.299, 0.587, 0.114])


def read_idx(path: Path) -> np.ndarray:
    data = gzip.decompress(path.read_bytes())
    dims = np.frombuffer(data, ">u4", data[3], 4).astype(int)
    return np.frombuffer(data, np.uint8, offset=4 + 4 * data[3]).reshape(dims)


def smooth_noise(rng, h, w, cells):
    """Zero-mean, unit-ish noise varying over about `cells` blobs per side."""
    g = rng.standard_normal((cells, cells)).astype(np.float32)
    return np.asarray(Image.fromarray(g).resize((w, h), Image.BICUBIC))


ZS = np.zeros((2, 256), bool)  # Zhang-Suen thinning: deletable 8-neighbourhoods (N, NE, E, ... bits) per sub-pass
for _code in range(256):
    p2, p3, p4, p5, p6, p7, p8, p9 = nb = [(_code >> i) & 1 for i in range(8)]
    if 2 <= sum(nb) <= 6 and sum(nb[i] < nb[(i + 1) % 8] for i in range(8)) == 1:
        ZS[:, _code] = (p2 * p4 * p6 == 0 and p4 * p6 * p8 == 0), (p2 * p4 * p8 == 0 and p2 * p6 * p8 == 0)


def thin(b, rounds):
    """Zhang-Suen thinning, at most `rounds` layers: strokes become lines, keeping loops and wide blobs."""
    b = np.pad(b, 1).astype(np.int32)
    for _ in range(rounds):
        before = b.sum()
        for lut in ZS:
            nb = [b[:-2, 1:-1], b[:-2, 2:], b[1:-1, 2:], b[2:, 2:], b[2:, 1:-1], b[2:, :-2], b[1:-1, :-2], b[:-2, :-2]]
            b[1:-1, 1:-1][(b[1:-1, 1:-1] == 1) & lut[sum(n << i for i, n in enumerate(nb))]] = 0
        if b.sum() == before:
            break
    return b[1:-1, 1:-1].astype(bool)


def digit_alpha(img28, height, angle, width_px):
    """Ink coverage (0..1) of the digit `height` px tall, rotated, its strokes redrawn about width_px wide."""
    ys, xs = np.nonzero(img28 > 40)
    crop = np.pad(img28[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1].astype(np.float32) / 255, 2)
    f = ndi.zoom(crop, 6, order=3)
    core = f > 0.5
    big = (f > 0.3) & ~(ndi.binary_fill_holes(core) & ~core)  # faint joins kept, and the loops of `core`
    d = ndi.distance_transform_edt(big)
    half = np.median(d[big & (d == ndi.maximum_filter(d, 3))])  # half the usual stroke width (6x px)
    extent = np.ptp(np.nonzero(big)[0])
    if d.max() > 2 * half or 2 * half > 0.19 * extent:  # heavy or blobby: keep its own shape and strokes
        s = 2 * height / extent  # 6x px -> 2x canvas px
        r, sk = max(1.0, 0.6 * s), big
    else:  # redraw along the centre line of its strokes with a round pen (loops kept)
        r, sk = width_px, thin(big, 10_000)
    py, px = np.nonzero(sk)
    pts = [np.stack([py, px], 1).astype(np.float32)]
    for dy, dx in ((0, 1), (1, 0), (1, 1), (1, -1)):  # fill in between touching skeleton pixels
        ok = sk[py + dy, px + dx]
        pts += [np.stack([py[ok] + t * dy, px[ok] + t * dx], 1) for t in (0.25, 0.5, 0.75)]
    pts = np.concatenate(pts)
    pts -= pts.mean(0)
    pts *= max(2 * height - 2 * r, 4) / np.ptp(pts[:, 0])
    c, s = np.cos(np.radians(angle)), np.sin(np.radians(angle))
    pts = pts @ np.array([[c, s], [-s, c]], np.float32)
    pts = np.rint(pts - pts.min(0) + r + 2).astype(int)
    canvas = np.ones(pts.max(0) + int(r) + 4, bool)
    canvas[pts[:, 0], pts[:, 1]] = False
    a = np.clip(r + 0.5 - ndi.distance_transform_edt(canvas), 0, 1)
    a = np.pad(a, ((0, a.shape[0] % 2), (0, a.shape[1] % 2)))
    a = a.reshape(a.shape[0] // 2, 2, a.shape[1] // 2, 2).mean(axis=(1, 3))
    ys, xs = np.nonzero(a > 0.02)
    return a[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]


def homography(src, dst):
    m = [
        r
        for (x, y), (u, v) in zip(src, dst)
        for r in ([x, y, 1, 0, 0, 0, -u * x, -u * y], [0, 0, 0, x, y, 1, -v * x, -v * y])
    ]
    return np.append(np.linalg.solve(np.array(m, float), np.array(dst, float).ravel()), 1).reshape(3, 3)


def apply_h(hm, x, y):
    w = hm[2, 0] * x + hm[2, 1] * y + hm[2, 2]
    return (hm[0, 0] * x + hm[0, 1] * y + hm[0, 2]) / w, (hm[1, 0] * x + hm[1, 1] * y + hm[1, 2]) / w


def band(coord, spacing, offset, width):
    """Coverage of parallel lines `width` px wide, `spacing` apart, one passing through `offset`."""
    d = np.abs((coord - offset + spacing / 2) % spacing - spacing / 2)
    return np.clip(width / 2 - d + 0.5, 0, 1)


def render(img28, back28, rng):
    """One picture (H, W, 3 floats 0..1), or None when its ink failed the contrast check."""
    H = int(rng.integers(90, 201))
    W = int(np.clip(rng.integers(90, 201), 0.75 * H, 1.4 * H))
    scan = rng.random() < 0.2
    P = int(0.15 * max(H, W)) + 4
    ph, pw = H + 2 * P, W + 2 * P
    # camera: output pixel (x, y) -> page pixel, through a mild perspective and a small rotation
    src = [(0, 0), (W, 0), (W, H), (0, H)]
    jit = 0 if scan else rng.uniform(0, 0.05) * max(H, W)
    th = np.radians(rng.uniform(-1, 1) if scan else rng.uniform(-3, 3))
    xy = np.array(src) - (W / 2, H / 2) + rng.uniform(-jit, jit, (4, 2))
    cam = homography(src, xy @ np.array([[np.cos(th), np.sin(th)], [-np.sin(th), np.cos(th)]]) + (pw / 2, ph / 2))
    back = np.linalg.inv(cam)
    # the digit: pen, size, place (whole ink box seen by the camera, 2 px to spare)
    pen = rng.choice(["ballpoint", "felt", "marker", "pencil"], p=[0.4, 0.25, 0.15, 0.2])
    rel, lo = {
        "ballpoint": ((0.035, 0.07), 1.5),
        "felt": ((0.07, 0.11), 2.0),
        "marker": ((0.11, 0.17), 3.0),
        "pencil": ((0.04, 0.08), 1.7),
    }[pen]
    height, angle, rel = rng.uniform(0.30, 0.75) * H, rng.uniform(-12, 12), rng.uniform(*rel)
    for tries in range(40):
        if tries % 8 == 0:  # shrink the digit a little when it keeps missing the frame
            a = digit_alpha(img28, height * 0.93 ** (tries // 8), angle, max(lo, rel * height))
            dh, dw = a.shape
        y0, x0 = int(rng.uniform(P, max(P, P + H - dh))), int(rng.uniform(P, max(P, P + W - dw)))
        u, v = apply_h(back, np.array([x0, x0 + dw, x0 + dw, x0]), np.array([y0, y0, y0 + dh, y0 + dh]))
        if u.min() >= 2 and v.min() >= 2 and u.max() <= W - 2 and v.max() <= H - 2:
            break
    else:
        return None
    # the paper, its texture and its printed lines (layers multiply: paper * (1 - coverage * (1 - colour)))
    yy, xx = np.mgrid[0:ph, 0:pw].astype(np.float32)
    kind = rng.choice(list(PAPERS), p=[0.35, 0.2, 0.15, 0.15, 0.15])
    paper = np.array(PAPERS[kind]) * rng.uniform(0.97, 1.03, 3)
    tex = 1 + rng.uniform(0.005, 0.03) * smooth_noise(rng, ph, pw, int(rng.integers(3, 9)))
    tex += rng.uniform(0.005, 0.025) * ndi.gaussian_filter(rng.standard_normal((ph, pw)), 0.7)
    if kind == "recycled":
        tex -= 0.2 * ndi.gaussian_filter((rng.random((ph, pw)) < 0.004).astype(float), 0.5)
    rgb = paper * tex[..., None]

    def stamp(cover, colour):
        rgb[...] *= 1 - cover[..., None] * (1 - np.asarray(colour))

    tilt = np.radians(rng.uniform(-2.5, 2.5))
    cy, cx = yy - y0 - dh / 2, xx - x0 - dw / 2  # lines tilt about the digit's centre
    ly = y0 + dh / 2 + cy * np.cos(tilt) - cx * np.sin(tilt)
    lx = x0 + dw / 2 + cx * np.cos(tilt) + cy * np.sin(tilt)
    ruling = rng.choice(["plain", "ruled", "squared", "dotted", "form"], p=[0.3, 0.25, 0.17, 0.1, 0.18])
    faint = rng.uniform(0.35, 0.8)
    if ruling == "ruled":
        s = rng.uniform(0.18, 0.4) * H
        base = y0 + dh * rng.uniform(0.95, 1.1) if rng.random() < 0.5 else rng.uniform(0, s)
        colour = (0.5, 0.66, 0.92) if rng.random() < 0.7 else (0.62, 0.62, 0.65)
        stamp(faint * band(ly, s, base, rng.uniform(0.8, 1.6)), colour)
        if x0 - P > 0.25 * W and rng.random() < 0.6:  # red margin, always left of the digit
            stamp(0.8 * np.clip(1.5 - np.abs(lx - rng.uniform(P + 0.05 * W, x0 - 4)), 0, 1), (0.92, 0.35, 0.4))
    elif ruling in ("squared", "dotted"):
        s, off = rng.uniform(0.09, 0.2) * H, rng.uniform(0, 50, 2)
        colour = [(0.55, 0.7, 0.92), (0.62, 0.62, 0.64), (0.6, 0.8, 0.68)][rng.integers(3)]
        if ruling == "squared":
            wl = rng.uniform(0.7, 1.3)
            stamp(faint * np.maximum(band(ly, s, off[0], wl), band(lx, s, off[1], wl)), colour)
        else:
            dy = np.abs((ly - off[0] + s / 2) % s - s / 2)
            dx = np.abs((lx - off[1] + s / 2) % s - s / 2)
            stamp(np.clip(rng.uniform(0.8, 1.5) - np.hypot(dx, dy) + 0.5, 0, 1), colour)
    elif ruling == "form":  # a box (or a row of boxes) round the digit, clear of the ink by >= 3 px
        g = rng.uniform(3, 3 + 0.25 * dh, 4)
        top, bot, left, right = y0 - g[0], y0 + dh + g[1], x0 - g[2], x0 + dw + g[3]
        wl, colour = rng.uniform(0.9, 1.8), [(0.4, 0.4, 0.42), (0.5, 0.6, 0.92), (0.95, 0.55, 0.5)][rng.integers(3)]
        row = rng.random() < 0.5  # a row of equal boxes, or just the one
        vert = (
            band(xx, right - left, left, wl) if row else np.maximum(band(xx, 1e4, left, wl), band(xx, 1e4, right, wl))
        )
        horiz = np.maximum(band(yy, 1e4, top, wl), band(yy, 1e4, bot, wl)) * (
            row | (xx > left - wl) & (xx < right + wl)
        )
        stamp(0.8 * faint * np.maximum(vert * ((yy > top - wl) & (yy < bot + wl)), horiz), colour)
    ink = np.array(
        INKS[
            "pencil"
            if pen == "pencil"
            else rng.choice(["black", "blue", "darkblue", "red", "green"], p=[0.3, 0.3, 0.2, 0.1, 0.1])
        ]
    )
    if rng.random() < 0.2:  # a faint mirrored digit written on the back of the sheet
        b = ndi.gaussian_filter(ndi.zoom(back28[:, ::-1] / 255.0, rng.uniform(0.4, 0.9) * H / 28, order=1), 1.5)
        by, bx = int(rng.integers(0, ph - b.shape[0])), int(rng.integers(0, pw - b.shape[1]))
        cover = np.zeros((ph, pw))
        cover[by : by + b.shape[0], bx : bx + b.shape[1]] = b * rng.uniform(0.06, 0.14)
        stamp(cover, ink)
    # the ink itself: pressure varies along the strokes, pencil is grainy and lighter
    cover = np.zeros((ph, pw))
    if pen == "pencil":
        grain = ndi.gaussian_filter(rng.standard_normal(a.shape), 0.6)
        a = a * rng.uniform(0.78, 0.9) * np.clip(0.85 + 0.5 * grain, 0.45, 1)
    else:
        a = a * rng.uniform(0.88, 1.0) * (1 - 0.12 * np.abs(smooth_noise(rng, dh, dw, 3)))
    cover[y0 : y0 + dh, x0 : x0 + dw] = a
    stamp(cover, ink)
    # photograph it: sample the page through the camera
    oy, ox = np.mgrid[0:H, 0:W].astype(float) + 0.5
    px, py = apply_h(cam, ox, oy)
    img = np.stack(
        [ndi.map_coordinates(rgb[..., c], [py - 0.5, px - 0.5], order=1, mode="nearest") for c in range(3)], axis=-1
    )
    seen = ndi.map_coordinates(cover, [py - 0.5, px - 0.5], order=1)
    dark = 1 - seen * (1 - ink @ LUMA)  # how much the ink darkens the paper under it
    light = np.ones((H, W))
    if not scan:
        ang = rng.uniform(0, 2 * np.pi)
        ramp = (ox * np.cos(ang) + oy * np.sin(ang)) / np.hypot(W, H)
        light *= 1 - rng.uniform(0, 0.3) * (ramp - ramp.min())
        light *= 1 - rng.uniform(0, 0.35) * (((ox - W / 2) / W) ** 2 + ((oy - H / 2) / H) ** 2) * 2
        if rng.random() < 0.35:  # the shadow edge of a phone or hand
            ang, cx, cy = rng.uniform(0, 2 * np.pi), rng.uniform(0, W), rng.uniform(0, H)
            side = ((ox - cx) * np.cos(ang) + (oy - cy) * np.sin(ang)) / rng.uniform(0.7, 8)
            light *= 1 - rng.uniform(0.2, 0.45) * np.clip(side + 0.5, 0, 1)
        for _ in range(6 if rng.random() < 0.2 else 0):  # a finger's shadow from one edge, clear of the digit
            (ex, ey), ang = rng.uniform(0.1, 0.9, 2) * (W, H), rng.uniform(0, 2 * np.pi)
            vx, vy = 2 * max(H, W) * np.cos(ang), 2 * max(H, W) * np.sin(ang)
            t = np.clip(((ox - ex) * vx + (oy - ey) * vy) / (vx * vx + vy * vy), 0, 1)
            dist = np.hypot(ox - ex - t * vx, oy - ey - t * vy)
            r, soft = rng.uniform(0.07, 0.13) * max(H, W), rng.uniform(2, 8)
            if dist[seen > 0.02].min() > r + soft:
                light *= 1 - rng.uniform(0.15, 0.35) * np.clip((r - dist) / soft + 0.5, 0, 1)
                break
        light = np.maximum(light, 0.45)
    warm = rng.uniform(-0.07, 0.08) if not scan else rng.uniform(-0.02, 0.02)
    cast = np.array([1 + warm, 1, 1 - warm]) * rng.uniform(0.98, 1.02, 3)
    img = img * light[..., None] ** np.array([1.1, 1.0, 0.9]) * cast * rng.uniform(0.88, 1.1)
    # lens / hand shake, then the sensor
    sigma = rng.uniform(0.2, min(1.3, 0.35 * max(lo, rel * height) + 0.2))
    if rng.random() < 0.25 and not scan:  # slight motion blur along a random direction
        n, ang = rng.uniform(2, 4.5), rng.uniform(0, np.pi)
        k = np.zeros((7, 7))
        for t in np.linspace(-n / 2, n / 2, 15):
            k[int(round(3 + t * np.sin(ang))), int(round(3 + t * np.cos(ang)))] += 1
        blur = lambda im: ndi.convolve(im, k / k.sum(), mode="nearest")  # noqa: E731
    else:
        blur = lambda im: ndi.gaussian_filter(im, sigma)  # noqa: E731
    img = np.stack([blur(img[..., c]) for c in range(3)], axis=-1)
    if np.median(blur(dark)[seen > 0.5]) > 0.62:  # ink must stay clearly darker than the paper round it
        return None
    noise = rng.uniform(0.004, 0.03)
    img += noise * (np.sqrt(np.clip(img, 0, 1)) * rng.standard_normal(img.shape) + rng.standard_normal((H, W, 1)))
    return np.clip(img, 0, 1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", type=Path, default=Path("/work/shared/data"))
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--start", type=int, default=0, help="draw only from test indices >= START")
    ap.add_argument("--sheet", type=Path, help="also write a contact sheet of the first 40 pictures (PNG)")
    args = ap.parse_args()
    images = read_idx(args.data_dir / "mnist" / "t10k-images-idx3-ubyte.gz")
    labels = read_idx(args.data_dir / "mnist" / "t10k-labels-idx1-ubyte.gz")
    pool = np.arange(args.start, len(images))
    if not 0 < args.n <= len(pool):
        ap.error(f"--n must be 1..{len(pool)} with --start {args.start}")
    chosen = np.random.default_rng(args.seed).permutation(pool)[: args.n]  # a smaller --n draws a prefix
    t0, rows, tiles = time.time(), ["file,label"], []
    for d in range(10):
        (args.out / str(d)).mkdir(parents=True, exist_ok=True)
    for idx in chosen:
        rng = np.random.default_rng([args.seed, int(idx)])
        while (pic := render(images[idx], images[rng.integers(len(images))], rng)) is None:
            pass
        name = f"{labels[idx]}/{idx}.jpg"
        Image.fromarray((pic * 255 + 0.5).astype(np.uint8)).save(args.out / name, quality=int(rng.integers(50, 93)))
        rows.append(f"{name},{labels[idx]}")
        if args.sheet and len(tiles) < 40:
            tiles.append(Image.open(args.out / name).convert("RGB"))
    (args.out / "labels.csv").write_text("\n".join(rows) + "\n")
    if args.sheet:
        sheet = Image.new("RGB", (8 * 206, 5 * 206), (40, 40, 40))
        for i, tile in enumerate(tiles):
            sheet.paste(tile, (i % 8 * 206 + 3, i // 8 * 206 + 3))
        sheet.save(args.sheet)
    print(f"{args.n} pictures in {args.out} ({time.time() - t0:.1f} s)")


if __name__ == "__main__":
    main()
