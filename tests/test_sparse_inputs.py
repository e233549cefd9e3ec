"""Sparse label forms give what the dense matrix gives, in every part that takes training labels.

Each accepted sparse form (scipy CSR / CSC / COO, torch sparse COO / CSR, ltml.VerifiedLabels) is
built from a random dense matrix of 1 / 0 / -1 and passed where the dense matrix goes: results
must be identical (integers, orders, float results of the same arithmetic), and the partial-label
simulators return the form they were given.
"""

from __future__ import annotations

import subprocess
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import RandomSampler

import ltml
import ltml.data.partial as partial_module
import ltml.data.table as table_module
from ltml import (
    BalancedSampler,
    ClassAwareSampler,
    DeferredClassAwareSampler,
    NearestClassMean,
    PairedSampler,
    RepeatFactorSampler,
    VerifiedLabels,
    class_weights,
    learn_weight_scaling,
    repeat_factors,
    retrain_classifier,
)
from ltml.data import (
    class_counts,
    cooccurrence,
    cooccurrence_rank,
    describe_labels,
    drop_labels,
    make_long_tailed,
    make_plt,
    pareto_quotas,
    split_deviation,
    stratified_split,
)
from ltml.data.describe import main as describe_main
from ltml.losses import (
    ClassBalancedFocalLoss,
    DistributionBalancedLoss,
    LogitCompensatedBCE,
    MultiFocalModifierLoss,
    WeightedBCE,
)
from ltml.samplers.balanced import fit_balanced_weights

sp = pytest.importorskip("scipy.sparse")

FORMS: dict[str, Callable[[np.ndarray], Any]] = {
    "scipy-csr": lambda d: sp.csr_array(d),
    "scipy-csc": lambda d: sp.csc_matrix(d),
    "scipy-coo": lambda d: sp.coo_array(d),
    "torch-coo": lambda d: torch.from_numpy(d).to_sparse(),
    "torch-csr": lambda d: torch.from_numpy(d).to_sparse_csr(),
    "verified": lambda d: VerifiedLabels.from_dense(d),
}


@pytest.fixture(autouse=True)
def _quiet_torch_sparse() -> Any:
    with warnings.catch_warnings():  # torch says its sparse CSR support is in beta
        warnings.filterwarnings("ignore", "Sparse .* support is in beta", UserWarning)
        yield


def random_labels(n: int = 120, c: int = 9, seed: int = 0) -> np.ndarray:
    """1 / 0 / -1 with a long tail, an empty class, an unlabelled row and a row of unknowns."""
    rng = np.random.default_rng(seed)
    rates = np.geomspace(0.5, 0.02, c)
    d = (rng.random((n, c)) < rates).astype(np.int64)
    d[rng.random((n, c)) < 0.15] = -1
    d[:, c - 2] = np.where(d[:, c - 2] == 1, 0, d[:, c - 2])  # a class with no positive
    d[5], d[-1] = 0, -1
    return d


def dense_of(x: Any) -> np.ndarray:
    if isinstance(x, VerifiedLabels):
        return x.to_dense().numpy().astype(np.int64)
    if isinstance(x, torch.Tensor):
        return x.to_dense().numpy()
    return np.asarray(x.toarray())


@pytest.fixture(params=list(FORMS))
def form(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def dense() -> np.ndarray:
    return random_labels()


def test_forms_hold_the_dense_matrix(dense: np.ndarray, form: str) -> None:
    np.testing.assert_array_equal(dense_of(FORMS[form](dense)), dense)


def test_counts_cooccurrence_and_weights(dense: np.ndarray, form: str) -> None:
    sparse = FORMS[form](dense)
    assert torch.equal(class_counts(sparse), class_counts(dense))
    assert torch.equal(ltml.class_counts(sparse), (torch.from_numpy(dense) == 1).sum(0))
    assert torch.equal(cooccurrence(sparse), cooccurrence(dense))
    for method in ("inverse", "effective_number"):
        expected = class_weights(class_counts(dense), method=method)
        assert torch.equal(class_weights(class_counts(sparse), method=method), expected)


@pytest.mark.parametrize(
    "kwargs",
    [{}, {"power": 0.5}, {"mode": "cycle"}, {"num_draws": "db"}, {"num_replicas": 2, "rank": 1}],
)
def test_class_aware_sampler(dense: np.ndarray, form: str, kwargs: dict[str, Any]) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # the class without a positive
        expected = ClassAwareSampler(dense, seed=3, **kwargs)
        sampler = ClassAwareSampler(FORMS[form](dense), seed=3, **kwargs)
    assert len(sampler) == len(expected)
    for epoch in (0, 1):
        sampler.set_epoch(epoch)
        expected.set_epoch(epoch)
        assert list(sampler) == list(expected)


def test_other_samplers(dense: np.ndarray, form: str) -> None:
    sparse = FORMS[form](dense)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        assert list(BalancedSampler(sparse, seed=1)) == list(BalancedSampler(dense, seed=1))
        repeat, reference_repeat = (
            RepeatFactorSampler(sparse, seed=4),
            RepeatFactorSampler(dense, seed=4),
        )
        assert list(repeat) == list(reference_repeat)
        torch.testing.assert_close(repeat_factors(sparse), repeat_factors(dense))
        np.testing.assert_array_equal(fit_balanced_weights(sparse), fit_balanced_weights(dense))
        deferred = DeferredClassAwareSampler(sparse, start_epoch=1, seed=2)
        reference = DeferredClassAwareSampler(dense, start_epoch=1, seed=2)
        for epoch in (0, 1):
            deferred.set_epoch(epoch)
            reference.set_epoch(epoch)
            assert list(deferred) == list(reference)
        uniform = RandomSampler(range(len(dense)), generator=torch.Generator().manual_seed(0))
        paired = PairedSampler(uniform, ClassAwareSampler(sparse, seed=4))
        uniform = RandomSampler(range(len(dense)), generator=torch.Generator().manual_seed(0))
        assert list(paired) == list(PairedSampler(uniform, ClassAwareSampler(dense, seed=4)))


@pytest.mark.parametrize(
    "loss", [WeightedBCE, ClassBalancedFocalLoss, DistributionBalancedLoss, LogitCompensatedBCE,
             MultiFocalModifierLoss],
)  # fmt: skip
def test_from_labels(dense: np.ndarray, form: str, loss: Any) -> None:
    built, expected = loss.from_labels(FORMS[form](dense)), loss.from_labels(dense)
    assert repr(built) == repr(expected)
    for (name, a), (_, b) in zip(
        built.state_dict().items(), expected.state_dict().items(), strict=True
    ):
        assert torch.equal(a, b), name


def test_stratified_split_and_deviation(dense: np.ndarray, form: str) -> None:
    sparse = FORMS[form](dense)
    parts = stratified_split(sparse, (0.6, 0.2, 0.2), seed=5)
    expected = stratified_split(dense, (0.6, 0.2, 0.2), seed=5)
    assert all(torch.equal(a, b) for a, b in zip(parts, expected, strict=True))
    torch.testing.assert_close(
        split_deviation(sparse, parts), split_deviation(dense, parts), rtol=0, atol=0,
        equal_nan=True,
    )  # fmt: skip


def test_describe_labels(dense: np.ndarray, form: str) -> None:
    names = [f"class {k}" for k in range(dense.shape[1])]
    report = describe_labels(FORMS[form](dense), names, thresholds=(5, 20), few=10)
    expected = describe_labels(dense, names, thresholds=(5, 20), few=10)
    assert report == expected
    assert report.format() == expected.format()


def test_describe_command_line_reads_a_large_table_sparse(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = ["image,tags", "a.jpg,cat|dog", "b.jpg,cat", "c.jpg,", "d.jpg,bird|cat"]
    table = tmp_path / "labels.csv"
    table.write_text("\n".join(rows) + "\n")
    assert describe_main([str(table)]) == 0
    dense_out = capsys.readouterr().out
    seen: list[Any] = []
    original = table_module.read_label_table

    def spy(*args: Any, **kwargs: Any) -> Any:
        result = original(*args, **kwargs)
        seen.append(result.labels)
        return result

    monkeypatch.setattr(table_module, "SPARSE_ABOVE", 0)  # every table is "large"
    monkeypatch.setattr("ltml.data.describe.read_label_table", spy)
    assert describe_main([str(table)]) == 0
    assert seen[0].layout == torch.sparse_csr
    assert capsys.readouterr().out == dense_out


@pytest.mark.parametrize("scheme", ["random", "per-class", "positives"])
@pytest.mark.parametrize("unknown_value", [-1, 0])
def test_drop_labels_keeps_the_form(
    dense: np.ndarray, form: str, scheme: str, unknown_value: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(partial_module, "BLOCK_ENTRIES", 50)  # several blocks of rows
    sparse = FORMS[form](dense)
    kwargs: dict[str, Any] = {"scheme": scheme, "seed": 7, "unknown_value": unknown_value}
    dropped = drop_labels(sparse, 0.4, **kwargs)
    assert type(dropped) is type(sparse)
    assert getattr(dropped, "format", None) == getattr(sparse, "format", None)
    assert getattr(dropped, "layout", None) == getattr(sparse, "layout", None)
    assert getattr(dropped, "dtype", None) == getattr(sparse, "dtype", None)
    np.testing.assert_array_equal(dense_of(dropped), drop_labels(dense, 0.4, **kwargs))


def test_make_long_tailed_and_plt(form: str) -> None:
    rng = np.random.default_rng(1)
    pool = (rng.random((3000, 5)) < [0.3, 0.1, 0.05, 0.02, 0.01]).astype(np.int64)
    pool[rng.random(pool.shape) < 0.05] = -1
    sparse = FORMS[form](pool)
    assert torch.equal(cooccurrence_rank(sparse), cooccurrence_rank(pool))
    quotas = pareto_quotas(5, 200)
    assert torch.equal(make_long_tailed(sparse, quotas, 3), make_long_tailed(pool, quotas, 3))
    got, expected = make_plt(sparse, 150, seed=2), make_plt(pool, 150, seed=2)
    assert torch.equal(got.indices, expected.indices)
    assert type(got.labels) is type(sparse)
    np.testing.assert_array_equal(dense_of(got.labels), expected.labels.numpy())


def test_decoupling_helpers(dense: np.ndarray, form: str) -> None:
    sparse = FORMS[form](dense)
    features = torch.randn(dense.shape[0], 6, generator=torch.Generator().manual_seed(0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        got = retrain_classifier(features, sparse, batch_size=16, lr=0.05, epochs=2)
        expected = retrain_classifier(features, dense, batch_size=16, lr=0.05, epochs=2)
        assert torch.equal(got.weight, expected.weight)
        assert torch.equal(got.bias, expected.bias)
        torch.manual_seed(0)
        base = nn.Linear(6, dense.shape[1])
        got_lws = learn_weight_scaling(base, features, sparse, batch_size=16, lr=0.05, epochs=2)
        expected_lws = learn_weight_scaling(base, features, dense, batch_size=16, lr=0.05, epochs=2)
        assert torch.equal(got_lws.scale, expected_lws.scale)
    keep = class_counts(dense) > 0  # NearestClassMean needs a positive in every class
    columns = keep.nonzero().flatten().numpy()
    sub = dense[:, columns]
    ncm, expected_ncm = (
        NearestClassMean.fit(features, FORMS[form](sub)),
        NearestClassMean.fit(features, sub),
    )
    torch.testing.assert_close(ncm.centroids, expected_ncm.centroids, rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError, match="needs a known positive for every class"):
        NearestClassMean.fit(features, sparse)


def test_memory_follows_the_stored_entries() -> None:
    # 10^6 x 10^5 would be 100 GB as int8: only a reader that never densifies gets through.
    n, c = 1_000_000, 100_000
    rows, cols = np.array([0, 7, 7, 999_999]), np.array([3, 3, 99_999, 50])
    labels = sp.csr_array((np.array([1, 1, 1, -1]), (rows, cols)), shape=(n, c))
    counts = class_counts(labels)
    assert counts.shape == (c,)
    assert counts[3] == 2
    assert counts.sum() == 3
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        sampler = ClassAwareSampler(labels, num_draws=10)
    assert set(sampler) <= {0, 7}
    verified = VerifiedLabels.from_triplets(rows, cols, [1, 0, 1, 1], (n, c))
    assert class_counts(verified).sum() == 3


def test_scipy_stays_optional() -> None:
    code = (
        "import sys, numpy as np, ltml, ltml.data, ltml.decoupling\n"
        "y = np.eye(3, dtype=np.int64)\n"
        "ltml.class_counts(y); ltml.ClassAwareSampler(y); ltml.data.describe_labels(y)\n"
        "ltml.data.drop_labels(ltml.VerifiedLabels.from_dense(y), 0.5)\n"
        "print('scipy' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "False"


# ------------------------------------------------------------------------------------ errors


BAD = {
    "a value of 2": (lambda: sp.csr_array(np.array([[2, 0], [0, 1]])), r"\{0, 1, -1\}, got 2"),
    "a NaN": (lambda: sp.csr_matrix(np.array([[np.nan, 0.0], [0.0, 1.0]])), r"got nan"),
    "a half": (lambda: torch.tensor([[0.5, 0.0], [0.0, 1.0]]).to_sparse(), r"got 0.5"),
    "a duplicate summed to 2": (
        lambda: sp.coo_array(([1, 1], ([0, 0], [1, 1])), shape=(2, 2)), r"stored twice"
    ),
    "3-D": (lambda: torch.zeros(2, 3, 4).to_sparse(), r"must be 2-D of shape \(N, C\)"),
    "dense dimensions": (lambda: torch.zeros(2, 3).to_sparse(1), r"dense_dim 1"),
    "no column": (lambda: sp.csr_array((3, 0)), r"at least one column"),
    "complex values": (lambda: sp.csr_array(np.array([[1j, 0], [0, 1]])), r"real numbers"),
}  # fmt: skip
CALLS: dict[str, Callable[[Any], Any]] = {
    "class_counts": class_counts,
    "cooccurrence": cooccurrence,
    "ClassAwareSampler": ClassAwareSampler,
    "BalancedSampler": BalancedSampler,
    "RepeatFactorSampler": RepeatFactorSampler,
    "WeightedBCE.from_labels": WeightedBCE.from_labels,
    "stratified_split": lambda y: stratified_split(y, (0.5, 0.5)),
    "describe_labels": describe_labels,
    "drop_labels": lambda y: drop_labels(y, 0.5),
    "make_long_tailed": lambda y: make_long_tailed(y, [1, 1]),
    "retrain_classifier": lambda y: retrain_classifier(torch.zeros(2, 3), y),
}


@pytest.mark.parametrize("bad", list(BAD))
@pytest.mark.parametrize("call", list(CALLS))
def test_bad_sparse_labels_name_the_argument(bad: str, call: str) -> None:
    make, match = BAD[bad]
    error = TypeError if bad == "complex values" else ValueError
    with pytest.raises(error, match=rf"`labels`.*{match}|{match}.*`labels`"):
        CALLS[call](make())


def test_bad_sparse_pool_names_pool_labels() -> None:
    with pytest.raises(ValueError, match=r"`pool_labels` must contain only values"):
        make_plt(sp.csr_array(np.array([[2, 0], [0, 1]])), 10)


def test_wrong_number_of_columns_is_named() -> None:
    labels = sp.csr_array(np.eye(3, dtype=np.int64))
    with pytest.raises(ValueError, match=r"`labels` must have 4 columns \(num_classes\)"):
        ClassAwareSampler(labels, num_classes=4)
    with pytest.raises(ValueError, match=r"`features` and `labels` must have the same number"):
        retrain_classifier(torch.zeros(4, 2), labels)


def test_a_sparse_matrix_is_not_changed() -> None:
    coo = sp.coo_array(([1, -1, 0], ([0, 1, 1], [1, 0, 0])), shape=(2, 2))  # unsorted, a duplicate
    csr = coo.tocsr(copy=True)
    csr.has_canonical_format = False  # as a user's hand-built CSR can be
    before = (csr.data.copy(), csr.indices.copy(), csr.indptr.copy())
    assert class_counts(coo).tolist() == [0, 1]
    assert class_counts(csr).tolist() == [0, 1]
    for a, b in zip(before, (csr.data, csr.indices, csr.indptr), strict=True):
        np.testing.assert_array_equal(a, b)


def test_cooccurrence_over_many_classes() -> None:
    # More classes than one tile of the mirrored pair counts (512), not a multiple of it.
    dense = random_labels(n=400, c=1100, seed=3)
    dense[:, 600:] = np.where(np.random.default_rng(4).random((400, 500)) < 0.05, 1, dense[:, 600:])
    expected = cooccurrence(dense)
    assert torch.equal(expected, expected.T)
    assert torch.equal(cooccurrence(sp.csr_array(dense)), expected)
    assert describe_labels(sp.csr_array(dense)) == describe_labels(dense)


@pytest.mark.parametrize("k", [0, 1, 7, 40, 10_000])
def test_top_pairs_ties_go_to_the_lower_pair(k: int) -> None:
    dense = (np.random.default_rng(5).random((60, 12)) < 0.15).astype(np.int64)  # many ties
    co, counts = cooccurrence(dense).numpy(), class_counts(dense).numpy()
    ranked = sorted(
        (-int(co[a, b]), a * 12 + b, a, b) for a in range(12) for b in range(a + 1, 12) if co[a, b]
    )[:k]
    expected = [
        (b, a, -v) if (counts[b], -b) > (counts[a], -a) else (a, b, -v) for v, _, a, b in ranked
    ]
    for labels in (dense, sp.csr_array(dense)):
        assert describe_labels(labels, top_pairs=k, quantiles=(1 / 3, 2 / 3)).top_pairs == expected
