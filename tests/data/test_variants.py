import numpy as np
import pytest
from scipy import ndimage

from glyphlab.data import variants
from glyphlab.data.dataset import Dataset, Split
from glyphlab.errors import ConfigError, DataError


def _glyphs(n, seed=0, side=28):
    rng = np.random.default_rng(seed)
    imgs = np.zeros((n, side, side), dtype=np.float32)
    for i in range(n):
        r, c = rng.integers(6, side - 10, 2)
        imgs[i, r : r + 6, c : c + 2] = 1.0
        imgs[i, r + 2, c : c + 5] = 0.8
    return imgs


def _ds(n_train=200, n_test=50):
    return Dataset(
        name="toy",
        classes=[str(i) for i in range(10)],
        splits={
            "train": Split(_glyphs(n_train, 0), np.arange(n_train) % 10),
            "test": Split(_glyphs(n_test, 1), np.arange(n_test) % 10),
        },
    )


@pytest.mark.parametrize("spec", ["rotate:-180:180", "background-noise", "rotate:30,background-noise,subset:50"])
def test_determinism(spec):
    ds = _ds()
    a = variants.apply_variants(ds, spec, seed=7)
    b = variants.apply_variants(ds, spec, seed=7)
    c = variants.apply_variants(ds, spec, seed=8)
    for k in ds.splits:
        assert a[k].images.tobytes() == b[k].images.tobytes()
        assert a[k].images.tobytes() != c[k].images.tobytes()
        assert a[k].images.dtype == np.float32 and a[k].images.min() >= 0 and a[k].images.max() <= 1
    np.testing.assert_array_equal(ds["train"].images, _ds()["train"].images)  # input untouched


def test_rotate_angles_per_split_and_meta():
    ds = _ds()
    out, angles = variants.rotate(ds, -45, 45, seed=3, return_angles=True)
    assert set(angles) == {"train", "test"}
    assert len(angles["train"]) == 200 and angles["train"].min() >= -45 and angles["train"].max() < 45
    assert not np.allclose(angles["train"][:50], angles["test"])  # each split its own stream
    assert out.meta["variants"] == [{"name": "rotate", "low": -45.0, "high": 45.0, "seed": 3}]
    np.testing.assert_array_equal(out["train"].labels, ds["train"].labels)


def test_rotate_90_is_rot90_and_matches_scipy():
    img = _glyphs(1, 5)[0]
    r = variants.rotate_images(img[None], np.array([90.0]))[0]
    np.testing.assert_allclose(r, np.rot90(img), atol=1e-5)
    r = variants.rotate_images(img[None], np.array([-90.0]))[0]
    np.testing.assert_allclose(r, np.rot90(img, -1), atol=1e-5)
    rng = np.random.default_rng(0)
    imgs = rng.random((8, 20, 20), dtype=np.float32)
    ang = rng.uniform(-180, 180, 8)
    ref = np.stack([ndimage.rotate(im, a, reshape=False, order=1, mode="grid-constant") for im, a in zip(imgs, ang)])
    np.testing.assert_allclose(variants.rotate_images(imgs, ang), np.clip(ref, 0, 1), atol=1e-4)


def test_background_noise():
    ds = _ds()
    out = variants.background_noise(ds, seed=1)
    tr, orig = out["train"].images, ds["train"].images
    assert (tr >= orig).all()  # ink stays
    bg = orig == 0
    assert 0.45 < tr[bg].mean() < 0.55 and tr[bg].std() > 0.25  # uniform noise in the background
    assert out.name == "toy+backrand"


def test_transpose_and_threshold():
    ds = _ds()
    np.testing.assert_array_equal(variants.transpose(ds)["test"].images, ds["test"].images.transpose(0, 2, 1))
    t = variants.threshold(variants.background_noise(ds, 0), 0.5)["train"].images
    assert set(np.unique(t)) <= {0.0, 1.0}
    with pytest.raises(ConfigError):
        variants.threshold(ds, 2)


def test_subset_stratified():
    ds = _ds(n_train=500)
    out = variants.subset(ds, 100, seed=0)
    assert len(out["train"]) == 100 and len(out["test"]) == 50
    assert np.bincount(out["train"].labels).tolist() == [10] * 10
    frac = variants.subset(ds, 0.2, seed=0)
    assert np.bincount(frac["train"].labels).tolist() == [10] * 10
    other = variants.subset(ds, 100, seed=1)
    assert not np.array_equal(out["train"].images, other["train"].images)
    with pytest.raises(DataError, match="only 500 images"):
        variants.subset(ds, 1000)
    with pytest.raises(DataError, match="no split 'val'"):
        variants.subset(ds, 10, split="val")


def test_blur_filter_drops_blurred_keeps_sharp():
    sharp = _glyphs(20, 3)
    blurred = ndimage.gaussian_filter(sharp, sigma=(0, 2.0, 2.0))
    ds = Dataset(
        "b",
        ["sharp", "blurred"],
        {
            "train": Split(np.concatenate([sharp, blurred]), np.r_[np.zeros(20), np.ones(20)].astype(int)),
            "test": Split(blurred[:5], None),
        },
    )
    scores = variants.blur_scores(ds["train"].images)
    assert scores[:20].min() > scores[20:].max()
    thr = float((scores[:20].min() + scores[20:].max()) / 2)
    out, info = variants.blur_filter(ds, threshold=thr, return_info=True)
    assert info == {"split": "train", "threshold": thr, "kept": 20, "dropped": 20}
    assert (out["train"].labels == 0).all() and len(out["test"]) == 5  # only train is filtered
    assert out.meta["blur_filter"] == info
    # default: a low percentile of the scores
    out = variants.blur_filter(ds)
    assert out.meta["blur_filter"]["dropped"] == 2 and out.meta["blur_filter"]["kept"] == 38
    assert (out["train"].labels[:20] == 0).all()
    with pytest.raises(DataError, match="drops every image"):
        variants.blur_filter(ds, threshold=1e9)


def test_parser():
    ds = _ds()
    out = variants.apply_variants(ds, "rotate:-180:180, subset:30 ,blur-filter", seed=0)
    assert [v["name"] for v in out.meta["variants"]] == ["rotate", "subset", "blur_filter"]
    assert len(out["train"]) < 30
    assert variants.apply_variants(ds, "", 0) is ds
    out = variants.apply_variants(ds, "rotate:15,transpose,threshold:0.3,back-rand:0.2:0.4", 0)
    assert out.meta["variants"][0]["low"] == -15.0
    assert out.meta["variants"][3] == {"name": "background_noise", "seed": 3, "low": 0.2, "high": 0.4}
    for spec, msg in [
        ("spin:3", r"unknown variant 'spin' in 'spin:3'. Known: rotate, "),
        ("rotate:a:b", r"variant 'rotate:a:b': an angle must be a number, got 'a'"),
        ("rotate:1:2:3", r"variant 'rotate:1:2:3': expected rotate"),
        ("rotate:90:-90", r"low angle 90 is above high angle -90"),
        ("subset", r"variant 'subset': expected subset:SIZE"),
        ("subset:1.5", r"a fractional size must be in \(0, 1\)"),
        ("subset:x", r"size .* must be a number, got 'x'"),
        ("transpose:1", r"expected transpose \(no arguments\)"),
        ("rotate,,subset:3", r"empty variant"),
        ("threshold:7", r"threshold level must be in \[0, 1\]"),
    ]:
        with pytest.raises(ConfigError, match=msg):
            variants.apply_variants(ds, spec, 0)
    with pytest.raises(DataError, match="only 200 images"):
        variants.apply_variants(ds, "subset:3000", 0)
