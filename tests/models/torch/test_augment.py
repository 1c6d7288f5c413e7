import pytest
import torch

from glyphlab.errors import ConfigError
from glyphlab.models.torch.augment import AugmentConfig, affine, augment_batch, make_generator, tta_proba


def _batch(n=6, side=12):
    g = torch.Generator().manual_seed(0)
    return torch.rand(n, 1, side, side, generator=g)


def test_same_seed_same_output_and_different_seed_differs():
    x = _batch()
    cfg = AugmentConfig(rotation=15, shift=0.1, scale=(0.9, 1.1), elastic=1.5)
    a = augment_batch(x, cfg, make_generator(3, "cpu"))
    b = augment_batch(x, cfg, make_generator(3, "cpu"))
    c = augment_batch(x, cfg, make_generator(4, "cpu"))
    assert a.shape == x.shape
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)


def test_rotation_by_90_equals_rot90():
    x = _batch()
    n = len(x)
    y = affine(x, torch.full((n,), 90.0), torch.zeros(n, 2), torch.ones(n))
    assert torch.allclose(y, torch.rot90(x, 1, dims=(-2, -1)), atol=1e-5)
    y = affine(x, torch.full((n,), -90.0), torch.zeros(n, 2), torch.ones(n))
    assert torch.allclose(y, torch.rot90(x, -1, dims=(-2, -1)), atol=1e-5)


def test_identity_and_shift():
    x = torch.zeros(1, 1, 8, 8)
    x[0, 0, 2, 2] = 1
    same = affine(x, torch.zeros(1), torch.zeros(1, 2), torch.ones(1))
    assert torch.allclose(same, x, atol=1e-6)
    moved = affine(x, torch.zeros(1), torch.tensor([[0.25, 0.0]]), torch.ones(1))  # 2 pixels right
    assert moved[0, 0].argmax().item() == 2 * 8 + 4


def test_inactive_config_is_identity():
    x = _batch()
    cfg = AugmentConfig(rotation=0, shift=0, scale=(1, 1), elastic=0)
    assert augment_batch(x, cfg, make_generator(0, "cpu")) is x


def test_tta_averages_and_is_repeatable():
    x = _batch()
    w = torch.randn(144, 3)

    def predict(b):
        return torch.softmax(b.flatten(1) @ w, dim=1)

    cfg = AugmentConfig(rotation=10)
    p1 = tta_proba(predict, x, 4, cfg, seed=1)
    p2 = tta_proba(predict, x, 4, cfg, seed=1)
    assert torch.equal(p1, p2)
    assert torch.allclose(p1.sum(1), torch.ones(len(x)), atol=1e-5)
    assert torch.equal(tta_proba(predict, x, 0, cfg), predict(x))


def test_background_noise_reaches_the_asked_fraction_and_keeps_the_ink():
    x = torch.zeros(400, 1, 10, 10)
    x[:, :, 4:6, 2:8] = 1.0  # a bar of ink on a black background
    cfg = AugmentConfig(rotation=0, shift=0, scale=(1, 1), background_noise=0.25)
    out = augment_batch(x, cfg, make_generator(0, "cpu"))
    noisy = out[:, 0, 0:3].amax(dim=(1, 2)) > 0  # any background pixel lit
    assert 0.18 < noisy.float().mean().item() < 0.32
    assert torch.all(out[:, :, 4:6, 2:8] > 0.999)  # max(x, U) never dims the ink
    assert torch.allclose(out[~noisy], x[~noisy], atol=1e-6)  # the other images are untouched
    bg = out[noisy][:, 0, 0:3]
    assert 0.4 < bg.mean().item() < 0.6  # uniform on [0, 1]


def test_nearest_resampling_keeps_pixel_noise_crisp():
    # a noisy image shifted by a fraction of a pixel: bilinear sampling averages neighbours (a smoother
    # background than the originals); nearest keeps every value one of the input's
    g = torch.Generator().manual_seed(0)
    x = torch.rand(4, 1, 28, 28, generator=g)
    cfg = dict(rotation=7.0, shift=0.05, scale=(1.0, 1.0), fill="reflection")
    smooth = augment_batch(x, AugmentConfig(**cfg), make_generator(1, "cpu"))
    crisp = augment_batch(x, AugmentConfig(**cfg, resample="nearest"), make_generator(1, "cpu"))
    assert crisp.std() > 0.27 and smooth.std() < 0.25  # U[0, 1] has std 0.289
    values = set(x.flatten().tolist())
    assert all(v in values for v in crisp.flatten().tolist())
    assert sum(v in values for v in smooth.flatten().tolist()) < 0.1 * smooth.numel()


def test_fill_continues_the_background_instead_of_a_blank_strip():
    x = torch.ones(2, 1, 16, 16)
    shift = torch.tensor([[0.25, 0.0], [0.0, -0.25]])
    keep = torch.ones(2)
    zeros = affine(x, torch.zeros(2), shift, keep)
    assert (zeros[0, 0, :, :3] == 0).all() and (zeros[1, 0, -3:, :] == 0).all()
    for fill in ("border", "reflection"):
        assert torch.allclose(affine(x, torch.zeros(2), shift, keep, fill=fill), x)


def test_unknown_resample_or_fill_is_a_clear_error():
    with pytest.raises(ConfigError, match="resample must be one of bilinear, nearest"):
        AugmentConfig(resample="bicubic")
    with pytest.raises(ConfigError, match="fill must be one of zeros, border, reflection"):
        AugmentConfig.from_params({"fill": "mirror"})
