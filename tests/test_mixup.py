"""Tests of ltml.mixup against literal per-sample transcriptions of mixup and CutMix."""

import numpy as np
import pytest
import torch
from scipy import stats

from ltml import mix_batch


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _literal_targets(y: torch.Tensor, perm: list[int], lam: float) -> torch.Tensor:
    out = torch.empty(y.shape, dtype=torch.float32)
    for i, j in enumerate(perm):
        for k in range(y.shape[1]):
            a, b = float(y[i, k]), float(y[j, k])
            out[i, k] = -1.0 if a < 0 or b < 0 else lam * a + (1 - lam) * b
    return out


@pytest.mark.parametrize("seed", range(5))
def test_mixup_matches_its_definition(seed):
    g = torch.Generator().manual_seed(100 + seed)
    x = torch.randn(6, 3, 4, 4, generator=g)
    y = torch.randint(-1, 2, (6, 5), generator=g)
    x_before, y_before = x.clone(), y.clone()
    mixed = mix_batch(x, y, alpha=0.4, generator=_gen(seed))
    perm = mixed.permutation.tolist()
    assert sorted(perm) == list(range(6))
    lam = mixed.lam
    for i, j in enumerate(perm):
        torch.testing.assert_close(mixed.inputs[i], lam * x[i] + (1 - lam) * x[j])
    torch.testing.assert_close(mixed.targets, _literal_targets(y, perm, lam))
    assert torch.equal(x, x_before)  # inputs untouched
    assert torch.equal(y, y_before)


def test_soft_targets_mix_again():
    y = torch.tensor([[0.25, 1.0], [0.5, -1.0]])
    mixed = mix_batch(torch.zeros(2, 3), y, generator=_gen(1))
    torch.testing.assert_close(
        mixed.targets, _literal_targets(y, mixed.permutation.tolist(), mixed.lam)
    )


def test_cutmix_pastes_one_box_and_lam_is_its_complement():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(4, 3, 16, 16, generator=g) + torch.arange(4.0).view(4, 1, 1, 1) * 10
    y = torch.tensor([[1, 0], [0, 1], [1, 1], [0, -1]])
    for seed in range(20):
        mixed = mix_batch(x, y, alpha=1.0, method="cutmix", generator=_gen(seed))
        perm = mixed.permutation.tolist()
        for i, j in enumerate(perm):
            changed = (mixed.inputs[i] != x[i]).any(dim=0)  # (H, W) mask of pasted pixels
            if i == j:
                continue
            rows = changed.any(dim=1).nonzero().flatten()
            cols = changed.any(dim=0).nonzero().flatten()
            area = 0 if rows.numel() == 0 else len(rows) * len(cols)
            # the pasted pixels form one full rectangle taken from the partner
            if area:
                box = (
                    slice(int(rows[0]), int(rows[-1]) + 1),
                    slice(int(cols[0]), int(cols[-1]) + 1),
                )
                assert int(changed.sum()) == area
                assert torch.equal(mixed.inputs[i][:, box[0], box[1]], x[j][:, box[0], box[1]])
            assert mixed.lam == pytest.approx(1 - area / 256)
        torch.testing.assert_close(mixed.targets, _literal_targets(y, perm, mixed.lam))


def test_lambda_follows_beta_alpha_alpha():
    lams = [
        mix_batch(torch.zeros(2, 1), torch.zeros(2, 1), 0.4, generator=_gen(s)).lam
        for s in range(1500)
    ]
    assert stats.kstest(lams, stats.beta(0.4, 0.4).cdf).pvalue > 1e-3
    assert stats.kstest(lams, stats.beta(1.0, 1.0).cdf).pvalue < 1e-6  # the test can tell


def test_deterministic_from_the_generator():
    x, y = torch.randn(8, 2), torch.randint(0, 2, (8, 3))
    a = mix_batch(x, y, generator=_gen(3))
    b = mix_batch(x, y, generator=_gen(3))
    c = mix_batch(x, y, generator=_gen(4))
    assert torch.equal(a.inputs, b.inputs)
    assert a.lam == b.lam
    assert a.lam != c.lam


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"alpha": 0.0}, ValueError, r"`alpha` must be a finite real number > 0, got 0\.0"),
        ({"alpha": float("nan")}, ValueError, r"`alpha` must be a finite real number > 0, got nan"),
        ({"method": "cut"}, ValueError, r"`method` must be one of 'mixup', 'cutmix', got str"),
        ({"method": "cutmix"}, ValueError, r"`inputs` must be 4-D \(N, C, H, W\) images"),
    ],
)
def test_bad_arguments(kwargs, error, message):
    with pytest.raises(error, match=message):
        mix_batch(torch.zeros(2, 3), torch.zeros(2, 4), **kwargs)


def test_bad_targets():
    with pytest.raises(
        ValueError, match=r"`targets` must contain only values in \{-1\} ∪ \[0, 1\], got 2"
    ):
        mix_batch(torch.zeros(2, 3), torch.tensor([[0, 2], [1, 0]]))
    with pytest.raises(
        ValueError, match=r"same batch size \(dimension 0\), got shapes \(3, 3\) and \(2, 2\)"
    ):
        mix_batch(torch.zeros(3, 3), torch.zeros(2, 2))
    with pytest.raises(TypeError, match=r"`targets` must be a torch\.Tensor, got ndarray"):
        mix_batch(torch.zeros(2, 3), np.zeros((2, 2)))
