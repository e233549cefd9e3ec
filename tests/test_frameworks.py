"""Lightning and Accelerate over 2 gloo CPU processes: the epoch of plain DDP, the meter's result.

Each test spawns two processes (as torchrun would: the environment variables of a launch), trains
a linear model for two epochs the way docs/guides/frameworks.md says, and records the indices of
every batch and the meter's result. The parent then checks that each process saw the batches
plain DDP gives (the sampler's own rank shares, batched), that the validation images were counted
exactly once, and that the meter's result equals one process's over the whole validation set.
The detection of a sampler sharded twice is checked in the same processes.
"""

from __future__ import annotations

import importlib.util
import os
import pickle
import socket
import warnings
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from ltml import (
    BalancedSampler,
    ClassAwareSampler,
    DeferredClassAwareSampler,
    DistributedEvalSampler,
    mAPMeter,
)

WORLD = 2
EPOCHS = 2
NUM_CLASSES = 3
TRAIN_DRAWS = 21  # odd: the sampler pads the epoch to 22, 11 a process
BATCH = 4  # 11 = 4 + 4 + 3: a short last batch
VAL_IMAGES = 7  # odd: a DistributedSampler would pad it to 8 (image 0 twice)
VAL_BATCH = 2


def _labels(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    labels = (rng.random((n, NUM_CLASSES)) < [0.7, 0.3, 0.1]).astype(np.int64)
    labels[np.arange(NUM_CLASSES), np.arange(NUM_CLASSES)] = 1  # every class has a positive
    return labels


TRAIN_LABELS = _labels(16, 0)
VAL_LABELS = _labels(VAL_IMAGES, 1)


class _Indexed(Dataset[tuple[torch.Tensor, torch.Tensor, int]]):
    """(features, labels, index): the index tells the test which image a batch held."""

    def __init__(self, labels: np.ndarray, seed: int) -> None:
        self.labels = torch.from_numpy(labels)
        self.x = torch.randn(len(labels), 4, generator=torch.Generator().manual_seed(seed))

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        return self.x[i], self.labels[i], i


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _launch_env(rank: int, port: int) -> None:
    """The environment torchrun gives each process (Lightning and Accelerate both read it)."""
    os.environ.update(
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE=str(WORLD), RANK=str(rank),
        LOCAL_RANK=str(rank), LOCAL_WORLD_SIZE=str(WORLD), GROUP_RANK="0", NODE_RANK="0",
        TORCHELASTIC_RUN_ID="ltml-test", OMP_NUM_THREADS="1",
    )  # fmt: skip
    torch.set_num_threads(1)


def _plain_ddp_batches(epoch: int, rank: int) -> list[list[int]]:
    """What plain DDP gives rank ``rank``: the sampler's own share, batched by the DataLoader."""
    sampler = ClassAwareSampler(TRAIN_LABELS, TRAIN_DRAWS, seed=0, num_replicas=WORLD, rank=rank)
    sampler.set_epoch(epoch)
    order = list(sampler)
    return [order[i : i + BATCH] for i in range(0, len(order), BATCH)]


def _one_process_ap(rows: dict[int, np.ndarray]) -> torch.Tensor:
    """The meter over the whole validation set in one process, from the scores the ranks used."""
    meter = mAPMeter(NUM_CLASSES)
    order = sorted(rows)
    meter.update(torch.from_numpy(np.stack([rows[i] for i in order])), VAL_LABELS[order])
    return meter.compute().ap


def _epoch(epoch: int) -> list[int]:
    """The sampler's whole epoch (all processes together, before padding)."""
    sampler = ClassAwareSampler(TRAIN_LABELS, TRAIN_DRAWS, seed=0, num_replicas=1)
    sampler.set_epoch(epoch)
    return list(sampler)


def _check_train(results: list[dict[str, Any]], *, exact: bool) -> None:
    """Together the epoch (padded by one repeat, as DDP pads); ``exact``: plain DDP's batches."""
    for epoch in range(EPOCHS):
        seen = Counter(i for res in results for batch in res["train"][epoch] for i in batch)
        extra = seen - Counter(_epoch(epoch))
        assert not Counter(_epoch(epoch)) - seen  # none dropped
        assert extra.total() == 1
        assert next(iter(extra)) in _epoch(epoch)
        if exact:
            for rank, res in enumerate(results):
                assert res["train"][epoch] == _plain_ddp_batches(epoch, rank), (rank, epoch)


def _check_val(results: list[dict[str, Any]]) -> None:
    """Every validation image counted once; the meter's result is one process's on every rank."""
    for epoch in range(EPOCHS):
        val = [res["val"][epoch] for res in results]
        indices = sorted(i for v in val for i in v["indices"])
        assert indices == list(range(VAL_IMAGES))  # every image once: none padded in
        rows = {i: s for v in val for i, s in zip(v["indices"], v["scores"], strict=True)}
        expected = _one_process_ap(rows)
        for v in val:  # every process got the result of one process over the whole set
            torch.testing.assert_close(v["ap"], expected, rtol=0, atol=0)


# ------------------------------------------------------------- one process, no framework needed


def _iterated_by(module: str, function: str) -> Any:
    """A function ``function`` of ``module`` (by name) that lists a sampler, as a wrapper does."""
    namespace: dict[str, Any] = {"__name__": module}
    exec(f"def {function}(sampler):\n    return [i for i in iter(sampler)]", namespace)
    return namespace[function]


SHARDED = [
    pytest.param(lambda: ClassAwareSampler(TRAIN_LABELS, num_replicas=2, rank=1), id="class_aware"),
    pytest.param(lambda: BalancedSampler(TRAIN_LABELS, num_replicas=2, rank=1), id="balanced"),
    pytest.param(
        lambda: DeferredClassAwareSampler(TRAIN_LABELS, 1, num_replicas=2, rank=1), id="deferred"
    ),
    pytest.param(lambda: DistributedEvalSampler(range(5), num_replicas=2, rank=1), id="eval"),
]


@pytest.mark.parametrize("make", SHARDED)
@pytest.mark.parametrize(
    ("module", "function", "advice"),
    [
        ("lightning.fabric.utilities.distributed", "reset", "use_distributed_sampler=False"),
        ("lightning_fabric.utilities.distributed", "__getitem__", "use_distributed_sampler=False"),
        ("accelerate.data_loader", "_iter_with_no_split", "out of accelerator.prepare"),
        ("accelerate.data_loader", "_iter_with_split", "out of accelerator.prepare"),
        ("accelerate.data_loader", "_fetch_batches", "out of accelerator.prepare"),
    ],
)
def test_a_sharded_sampler_warns_once_when_a_framework_shards_it_again(
    make: Any, module: str, function: str, advice: str
) -> None:
    sampler = make()
    expected = list(sampler)  # iterated by our own code: no warning
    name = type(sampler).__name__
    with pytest.warns(UserWarning, match=rf"^{name} shards itself over the 2 processes") as w:
        assert _iterated_by(module, function)(sampler) == expected  # what it yields does not change
    (message,) = [str(x.message) for x in w]
    assert advice in message
    assert "num_replicas=1" in message
    assert "skips 1/2 of every epoch" in message
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _iterated_by(module, function)(sampler)  # once per sampler
        if isinstance(sampler, DeferredClassAwareSampler):
            sampler.set_epoch(1)  # its class-aware phase: still the same sampler, no new warning
            _iterated_by(module, function)(sampler)


def test_no_warning_unsharded_or_outside_a_framework() -> None:
    sharding = [
        ("accelerate.data_loader", "_iter_with_no_split"),
        ("lightning.fabric.utilities.distributed", "reset"),
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for module, function in sharding:
            _iterated_by(module, function)(ClassAwareSampler(TRAIN_LABELS, num_replicas=1))
            _iterated_by(module, function)(DistributedEvalSampler(range(5)))
        # framework code that iterates a loader without sharding it says nothing: Lightning's
        # loops, Accelerate's skip_first_batches (resuming mid-epoch)
        for module, function in [
            ("lightning.pytorch.loops.fit_loop", "advance"),
            ("accelerate.data_loader", "__iter__"),
        ]:
            sampler = ClassAwareSampler(TRAIN_LABELS, 4, num_replicas=2, rank=0)
            _iterated_by(module, function)(sampler)


def test_num_replicas_one_alone_means_unsharded_on_every_rank() -> None:
    # rank defaults to 0 whatever the process group says (none here; see the DDP tests)
    sampler = ClassAwareSampler(TRAIN_LABELS, 9, num_replicas=1)
    assert (sampler.num_replicas, sampler.rank, len(sampler)) == (1, 0, 9)
    with pytest.raises(ValueError, match="`rank`"):
        ClassAwareSampler(TRAIN_LABELS, 9, num_replicas=1, rank=1)


def test_distributed_eval_sampler_shares() -> None:
    for n, world in [(7, 2), (5, 3), (2, 3), (0, 2), (6, 1)]:
        shares = [list(DistributedEvalSampler(range(n), world, r)) for r in range(world)]
        assert sorted(i for share in shares for i in share) == list(range(n))  # each once
        assert [len(share) for share in shares] == [
            len(DistributedEvalSampler(range(n), world, r)) for r in range(world)
        ]
        assert max(map(len, shares)) - min(map(len, shares)) <= 1
        assert shares == [list(range(r, n, world)) for r in range(world)]
    sampler = DistributedEvalSampler(range(7), num_replicas=2, rank=0)
    assert isinstance(sampler, DistributedSampler)  # what Lightning leaves in place
    assert (sampler.num_samples, sampler.total_size) == (4, 7)
    sampler.set_epoch(3)
    assert list(sampler) == [0, 2, 4, 6]


def test_distributed_eval_sampler_errors() -> None:
    with pytest.raises(TypeError, match="`dataset` must have a length"):
        DistributedEvalSampler(iter(range(3)))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="`rank`"):
        DistributedEvalSampler(range(3), num_replicas=2, rank=2)
    with pytest.raises(ValueError, match="`num_replicas`"):
        DistributedEvalSampler(range(3), num_replicas=0)


# ---------------------------------------------------------------------------------- Lightning


def _lightning_module(train_sampler_kwargs: dict[str, Any]) -> Any:
    import lightning.pytorch as pl

    class Module(pl.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.net = torch.nn.Linear(4, NUM_CLASSES)
            self.meter = mAPMeter(NUM_CLASSES)
            self.train_batches: list[list[list[int]]] = [[] for _ in range(EPOCHS)]
            self.val: list[dict[str, Any]] = []
            self._val_rows: dict[str, list[Any]] = {"indices": [], "scores": []}

        def train_dataloader(self) -> DataLoader[Any]:
            sampler = ClassAwareSampler(TRAIN_LABELS, TRAIN_DRAWS, seed=0, **train_sampler_kwargs)
            return DataLoader(_Indexed(TRAIN_LABELS, 0), sampler=sampler, batch_size=BATCH)

        def val_dataloader(self) -> DataLoader[Any]:
            val_set = _Indexed(VAL_LABELS, 1)
            return DataLoader(
                val_set, sampler=DistributedEvalSampler(val_set), batch_size=VAL_BATCH
            )

        def training_step(self, batch: Any, _: int) -> torch.Tensor:
            x, y, index = batch
            self.train_batches[self.current_epoch].append(index.tolist())
            return F.binary_cross_entropy_with_logits(self.net(x), y.float())

        def validation_step(self, batch: Any, _: int) -> None:
            x, y, index = batch
            scores = self.net(x)
            self.meter.update(scores, y)
            self._val_rows["indices"] += index.tolist()
            self._val_rows["scores"] += list(scores.numpy())

        def on_validation_epoch_end(self) -> None:
            result = self.meter.compute()  # gathered over the processes
            self.meter.reset()
            self.log("val_mAP", result.map, sync_dist=True)  # as the guide does
            self.val.append({**self._val_rows, "ap": result.ap})
            self._val_rows = {"indices": [], "scores": []}

        def configure_optimizers(self) -> torch.optim.Optimizer:
            return torch.optim.SGD(self.parameters(), lr=0.1)

    return Module()


def _fit(use_distributed_sampler: bool, train_sampler_kwargs: dict[str, Any], root: str) -> Any:
    import lightning.pytorch as pl

    module = _lightning_module(train_sampler_kwargs)
    trainer = pl.Trainer(
        accelerator="cpu", devices=WORLD, strategy="ddp", max_epochs=EPOCHS,
        use_distributed_sampler=use_distributed_sampler, num_sanity_val_steps=0, logger=False,
        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
        default_root_dir=root,
    )  # fmt: skip
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer.fit(module)
    module.ltml_warnings = [str(w.message) for w in caught if "shards itself" in str(w.message)]
    return module


def _lightning_worker(rank: int, port: int, out: str) -> None:
    _launch_env(rank, port)
    results = {}
    # The guide's two ways, then the mistake of the issue (a sharded sampler, default flags).
    for name, flag, kwargs in [
        ("own_sharding", False, {}),
        ("unsharded", True, {"num_replicas": 1}),
        ("sharded_twice", True, {}),
    ]:
        module = _fit(flag, kwargs, out)
        results[name] = {
            "train": module.train_batches, "val": module.val, "warnings": module.ltml_warnings,
        }  # fmt: skip
    (Path(out) / f"lightning{rank}.pkl").write_bytes(pickle.dumps(results))
    if dist.is_initialized():
        dist.destroy_process_group()


@pytest.mark.slow
@pytest.mark.skipif(
    importlib.util.find_spec("lightning") is None,
    reason="lightning is not installed (pip install 'ltml-components[frameworks]')",
)
def test_lightning_ddp_gives_the_plain_ddp_epoch(tmp_path: Path) -> None:
    mp.spawn(_lightning_worker, args=(_free_port(), str(tmp_path)), nprocs=WORLD, join=True)
    results = [pickle.loads((tmp_path / f"lightning{r}.pkl").read_bytes()) for r in range(WORLD)]
    # The guide's way: the epoch of plain DDP, batch for batch.
    _check_train([res["own_sharding"] for res in results], exact=True)
    # Unsharded, Lightning shards: the same draws, in positions Lightning shuffles (its seed).
    unsharded = [res["unsharded"] for res in results]
    _check_train(unsharded, exact=False)
    assert unsharded[0]["train"] != [_plain_ddp_batches(e, 0) for e in range(EPOCHS)]
    for name in ("own_sharding", "unsharded"):
        _check_val([res[name] for res in results])
        assert not any(res[name]["warnings"] for res in results)
    # Sharded twice (the issue): half of each share each epoch, and a warning that says so.
    twice = [res["sharded_twice"] for res in results]
    for epoch in range(EPOCHS):
        for rank, res in enumerate(twice):
            seen = [i for batch in res["train"][epoch] for i in batch]
            share = [i for batch in _plain_ddp_batches(epoch, rank) for i in batch]
            assert len(seen) == 6
            assert not Counter(seen) - Counter(share)
    for res in twice:
        (message,) = res["warnings"]
        assert "ClassAwareSampler shards itself over the 2 processes" in message
        assert "use_distributed_sampler=False" in message
        assert "num_replicas=1" in message


# --------------------------------------------------------------------------------- Accelerate


def _accelerate_worker(rank: int, port: int, out: str) -> None:
    _launch_env(rank, port)
    from accelerate import Accelerator

    accelerator = Accelerator(cpu=True)  # initialises the process group from the environment
    model = torch.nn.Linear(4, NUM_CLASSES)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    model, optimizer = accelerator.prepare(model, optimizer)  # the loaders stay out of prepare()
    train_set, val_set = _Indexed(TRAIN_LABELS, 0), _Indexed(VAL_LABELS, 1)
    sampler = ClassAwareSampler(TRAIN_LABELS, TRAIN_DRAWS, seed=0)  # shards itself
    loader = DataLoader(train_set, sampler=sampler, batch_size=BATCH)
    val_loader = DataLoader(val_set, sampler=DistributedEvalSampler(val_set), batch_size=VAL_BATCH)
    meter = mAPMeter(NUM_CLASSES)
    record: dict[str, Any] = {"train": [], "val": []}
    for epoch in range(EPOCHS):
        sampler.set_epoch(epoch)
        model.train()
        batches = []
        for x, y, index in loader:
            logits = model(x.to(accelerator.device))
            loss = F.binary_cross_entropy_with_logits(logits, y.to(accelerator.device).float())
            accelerator.backward(loss)
            optimizer.step()
            optimizer.zero_grad()
            batches.append(index.tolist())
        record["train"].append(batches)
        model.eval()
        rows: dict[str, list[Any]] = {"indices": [], "scores": []}
        with torch.no_grad():
            for x, y, index in val_loader:
                scores = model(x.to(accelerator.device))
                meter.update(scores, y)
                rows["indices"] += index.tolist()
                rows["scores"] += list(scores.cpu().numpy())
        result = meter.compute()  # gathered over the processes
        meter.reset()
        record["val"].append({**rows, "ap": result.ap})

    # Unsharded and prepared: every draw of the epoch, in whole batches dealt out in turn.
    unsharded = ClassAwareSampler(TRAIN_LABELS, TRAIN_DRAWS, seed=0, num_replicas=1)
    prepared = accelerator.prepare(DataLoader(train_set, sampler=unsharded, batch_size=BATCH))
    record["unsharded"] = [index.tolist() for _, _, index in prepared]
    # Sharded and prepared (the issue): half of each share, and a warning.
    twice = accelerator.prepare(
        DataLoader(train_set, sampler=ClassAwareSampler(TRAIN_LABELS, TRAIN_DRAWS, seed=0),
                   batch_size=BATCH)
    )  # fmt: skip
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        record["twice"] = [index.tolist() for _, _, index in twice]
    record["warnings"] = [str(w.message) for w in caught if "shards itself" in str(w.message)]
    (Path(out) / f"accelerate{rank}.pkl").write_bytes(pickle.dumps(record))
    accelerator.end_training()  # destroys the process group


@pytest.mark.slow
@pytest.mark.skipif(
    importlib.util.find_spec("accelerate") is None,
    reason="accelerate is not installed (pip install 'ltml-components[frameworks]')",
)
def test_accelerate_ddp_gives_the_plain_ddp_epoch(tmp_path: Path) -> None:
    mp.spawn(_accelerate_worker, args=(_free_port(), str(tmp_path)), nprocs=WORLD, join=True)
    results = [pickle.loads((tmp_path / f"accelerate{r}.pkl").read_bytes()) for r in range(WORLD)]
    _check_train(results, exact=True)
    _check_val(results)
    # Prepared with num_replicas=1: rank r gets batches r, r + 2, ... of the epoch, the last
    # filled up with the epoch's first draws (even_batches): every draw, not DDP's batches.
    order = _epoch(0)
    batches = [order[i : i + BATCH] for i in range(0, len(order), BATCH)]  # 4, 4, 4, 4, 4, 1
    assert results[0]["unsharded"] == batches[0:6:2]
    assert results[1]["unsharded"] == [*batches[1:4:2], batches[5] + order[:3]]
    # Sharded twice: rank r deals its own 3 batches out again and keeps 2 (r, then a short one
    # filled up), about half of its share; the warning names the way out.
    for rank, res in enumerate(results):
        own = _plain_ddp_batches(0, rank)
        assert len(res["twice"]) == 2
        assert res["twice"][0] == own[rank]
        assert {i for batch in res["twice"] for i in batch} <= {i for batch in own for i in batch}
        (message,) = res["warnings"]
        assert "ClassAwareSampler shards itself over the 2 processes" in message
        assert "accelerator.prepare" in message
        assert "num_replicas=1" in message
