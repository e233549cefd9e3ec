"""End-to-end tests of the reproduction harness, examples/reproduce/ (CPU, no download)."""

from __future__ import annotations

import json
import math
import os
import re
import runpy
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

HARNESS = Path(__file__).resolve().parents[1] / "examples" / "reproduce"
sys.path.insert(0, str(HARNESS))

import ltml  # noqa: E402
from ltml.data import drop_labels, make_demo  # noqa: E402
from ltml_example import resolve, run  # noqa: E402
from ltml_example.data import build_data, iterations_per_epoch  # noqa: E402
from ltml_example.model import build_model  # noqa: E402
from ltml_example.presets import PAPER, ROWS  # noqa: E402

# A demo small enough for a few CPU steps: 40 images of the top digit, 40 test images.
TINY_DEMO = [
    "--dataset",
    "demo",
    "--demo-max-count",
    "40",
    "--demo-test-size",
    "40",
    "--batch-size",
    "4",
    "--iters-per-epoch",
    "2",
    "--no-progress",
    "--quiet",
]

# The flags of a csv run that resolve() accepts without reading the (absent) table.
CSV_FLAGS_ONLY = ["--dataset", "csv", "--train-csv", "t.csv", "--image-root", ".",
                  "--test-fraction", "0.2"]  # fmt: skip

# The table of docs/guides/reproduce.md, transcribed: row -> (branches, classification loss,
# consistency, flip test, batch multiplier). The six paper rows, the baselines and the two controls.
EXPECTED_ROWS = {
    "u-only": ("u", "weighted", False, False, 1),
    "r-only": ("r", "weighted", False, False, 1),
    "both": ("both", "weighted", False, False, 1),
    "consistency": ("both", "weighted", True, False, 1),
    "ltml": ("both", "compensated", True, False, 1),
    "ltml-flip": ("both", "compensated", True, True, 1),
    "erm": ("u", "bce", False, False, 1),
    "rs": ("r", "bce", False, False, 1),
    "balanced": ("r", "bce", False, False, 1),
    "db-focal": ("r", "db-focal", False, False, 1),
    "u-only-2x": ("u", "weighted", False, False, 2),
    "mixed": ("mixed", "compensated", False, False, 1),
    "asl": ("u", "asl", False, False, 1),
    "comic-2stage": ("u", "comic", False, False, 1),
    # the field since 2021
    "rfs": ("r", "bce", False, False, 1),
    "hill": ("u", "hill", False, False, 1),
    "splc": ("u", "splc", False, False, 1),
    "comic": ("both", "comic", False, False, 1),
}
# Deferred rows train as ERM (the switch is another field); decoupled rows' stage 1 as their row.
EXPECTED_ROWS |= {row: EXPECTED_ROWS["erm"] for row in ("drw", "drs", "crt", "ncm", "tau-norm")}
EXPECTED_ROWS |= {"lws": EXPECTED_ROWS["erm"], "logit-adjust": EXPECTED_ROWS["erm"]}
EXPECTED_ROWS["ltml-crt"] = EXPECTED_ROWS["ltml"]
EXPECTED_ROWS |= {"mixup": EXPECTED_ROWS["erm"], "bot": EXPECTED_ROWS["erm"]}
EXPECTED_ROWS |= {"csra": EXPECTED_ROWS["erm"], "ml-decoder": EXPECTED_ROWS["erm"]}


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    # Tiny networks gain nothing from intra-op threads, and oversubscribed threads are slow.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _row_fields(cfg: object) -> tuple[object, ...]:
    names = ("branches", "cls_loss", "consistency", "flip_test", "batch_multiplier")
    return tuple(getattr(cfg, n) for n in names)


@pytest.mark.parametrize("row", sorted(EXPECTED_ROWS))
def test_row_presets_set_the_method_flags(row: str, tmp_path: Path) -> None:
    cfg = resolve(["--dataset", "voc-lt", "--data-root", str(tmp_path), "--row", row])
    assert _row_fields(cfg) == EXPECTED_ROWS[row]
    assert set(ROWS) == set(EXPECTED_ROWS)


def test_paper_numbers_are_the_published_ones() -> None:
    # Spot checks against the papers (Guo & Wang 2021, Table 3; Wu et al. 2020), as
    # docs/guides/reproduce.md quotes them.
    assert PAPER["ltml"]["voc-lt"] == (81.44, 75.68, 85.53, 82.69)
    assert PAPER["erm"]["coco-lt"] == (41.27, 48.48, 49.06, 24.25)
    assert PAPER["ltml-flip"]["coco-lt"][0] == 57.28
    assert "rs" not in PAPER
    assert "mixed" not in PAPER


def test_protocol_defaults(tmp_path: Path) -> None:
    cfg = resolve(["--dataset", "voc-lt", "--data-root", str(tmp_path)])
    assert (cfg.row, cfg.arch, cfg.weights, cfg.image_size) == (
        "ltml",
        "resnet50",
        "IMAGENET1K_V1",
        224,
    )
    assert (cfg.batch_size, cfg.epochs, cfg.lr, cfg.momentum, cfg.weight_decay) == (
        32,
        8,
        0.01,
        0.9,
        1e-4,
    )
    assert (cfg.warmup_iters, cfg.warmup_ratio, cfg.lr_steps) == (500, 1 / 3, (5, 7))
    assert (cfg.grad_clip, cfg.consistency_weight, cfg.seed) == (35.0, 0.1, 1)
    assert cfg.freeze_stem
    assert cfg.bn_eval
    assert cfg.sampler_mode == "cycle"


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (["--row", "erm", "--lr", "0.02"], {"branches": "u", "cls_loss": "bce", "lr": 0.02}),
        (["--row", "ltml", "--no-consistency"], {"consistency": False, "cls_loss": "compensated"}),
        (["--row", "u-only", "--branches", "r"], {"branches": "r", "cls_loss": "weighted"}),
        (["--lr-steps", "3", "--epochs", "4"], {"lr_steps": (3,), "epochs": 4}),
        (["--row", "consistency", "--consistency-space", "logit"], {"consistency_space": "logit"}),
    ],
)
def test_flags_override_presets(flags: list[str], expected: dict[str, object]) -> None:
    cfg = resolve(["--dataset", "demo", *flags])
    assert {k: getattr(cfg, k) for k in expected} == expected


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--dataset", "voc-lt"], "--data-root is required for --dataset voc-lt"),
        (["--dataset", "coco-lt", "--data-root", "/no/such/dir"], "is not a directory"),
        (["--branches", "u"], "--consistency needs --branches both"),
        (["--row", "both", "--batch-multiplier", "2"], "--batch-multiplier applies to"),
        (["--eval-every-epoch"], "set --val-fraction"),
        (["--fit-thresholds"], "--fit-thresholds fits on a validation split: set --val-fraction"),
        (["--row", "erm", "--batch-size", "0"], "--batch-size must be positive"),
        (["--epoch-length", "long"], "expected 'db', 'uniform' or a number"),
        (["--row", "drs", "--sampler-mode", "balanced"], "not --sampler-mode balanced"),
    ],
)
def test_bad_flags_exit_with_a_clear_message(
    flags: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        resolve(flags)
    assert message in capsys.readouterr().err


def test_epoch_length_rule() -> None:
    # DB rule: int(max_k n_k * C / 4) draws per stream; here 40 * 10 / 4 = 100 draws.
    cfg = resolve([*TINY_DEMO[:4], "--batch-size", "8"])
    labels = torch.zeros(50, 10, dtype=torch.int64)
    labels[:40, 0] = 1
    labels[40:, 1:] = 1
    assert iterations_per_epoch(cfg, labels, world=1) == (100, 13)  # ceil(100 / 8)
    assert iterations_per_epoch(cfg, labels, world=2) == (100, 7)  # ceil(100 / 16)
    uniform = resolve(["--epoch-length", "uniform", "--batch-size", "8"])
    assert iterations_per_epoch(uniform, labels, world=1) == (50, 7)


def _state(path: Path) -> dict[str, object]:
    return torch.load(path, map_location="cpu", weights_only=True)


def _assert_equal_states(a: object, b: object) -> None:
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor)
        assert torch.equal(a, b)
    elif isinstance(a, dict):
        assert isinstance(b, dict)
        assert a.keys() == b.keys()
        for k in a:
            _assert_equal_states(a[k], b[k])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)  # type: ignore[arg-type]
        for x, y in zip(a, b, strict=True):  # type: ignore[call-overload]
            _assert_equal_states(x, y)
    else:
        assert a == b


def test_resume_gives_the_same_final_weights(tmp_path: Path) -> None:
    flags = [*TINY_DEMO, "--row", "ltml", "--epochs", "2", "--no-plot"]
    straight = run(resolve([*flags, "--output", str(tmp_path / "a")]))
    first = run(resolve([*flags, "--output", str(tmp_path / "b"), "--epochs", "1"]))
    resumed = run(resolve([*flags, "--output", str(tmp_path / "b"), "--resume", "auto"]))
    a, b = _state(tmp_path / "a" / "last.pt"), _state(tmp_path / "b" / "last.pt")
    assert b["epoch"] == 2
    # the learnable compensation (the demo's tied guard: a per-class bias) has moved, so the
    # loss's parameters are part of the comparison
    assert not torch.equal(a["model"]["criterion.cls_u.mu_pos"], torch.zeros(10))
    for key in ("model", "optimizer", "scheduler", "rng"):
        _assert_equal_states(a[key], b[key])
    assert json.dumps(straight["test"]) == json.dumps(resumed["test"])
    # the history of the epochs before the resumption is kept, each epoch's loss as trained
    assert [h["epoch"] for h in resumed["history"]] == [1, 2]
    assert resumed["history"] == straight["history"]
    assert resumed["train_seconds"] > first["train_seconds"] > 0  # both runs' seconds
    # a finished run resumed again trains nothing and writes the same results
    saved = json.loads((tmp_path / "b" / "results.json").read_text())
    again = run(resolve([*flags, "--output", str(tmp_path / "b"), "--resume", "auto"]))
    assert again["history"] == resumed["history"]
    assert again["train_seconds"] == resumed["train_seconds"]
    rewritten = json.loads((tmp_path / "b" / "results.json").read_text())
    assert rewritten == saved
    _assert_equal_states(_state(tmp_path / "b" / "last.pt"), b)


def test_resume_refuses_other_settings(tmp_path: Path) -> None:
    flags = [*TINY_DEMO, "--row", "erm", "--epochs", "1", "--no-plot", "--output", str(tmp_path)]
    run(resolve(flags))
    with pytest.raises(ValueError, match=r"other settings: lr=0\.05 \(now 0\.2\)"):
        run(resolve([*flags, "--resume", "auto", "--lr", "0.2"]))
    with pytest.raises(FileNotFoundError, match=r"checkpoint .* not found"):
        run(resolve([*flags, "--resume", str(tmp_path / "missing.pt")]))
    # the batch of a process and the number of processes are settings like the others
    with pytest.raises(ValueError, match=r"other settings: batch_size=4 \(now 8\)\. Resume"):
        run(resolve([*flags, "--resume", "auto", "--batch-size", "8"]))
    state = _state(tmp_path / "last.pt")
    assert state["world"] == 1
    torch.save({**state, "world": 2}, tmp_path / "last.pt")  # as torchrun with 2 processes
    with pytest.raises(ValueError, match=r"other settings: processes=2 \(now 1\)\. Resume"):
        run(resolve([*flags, "--resume", "auto"]))


@pytest.mark.parametrize(
    "row", ["erm", "db-focal", "both", "ltml-flip", "u-only-2x", "mixed", "balanced"]
)
def test_every_kind_of_row_trains_and_reports(row: str, tmp_path: Path) -> None:
    result = run(
        resolve([*TINY_DEMO, "--row", row, "--epochs", "1", "--no-plot", "--output", str(tmp_path)])
    )
    assert result["iterations_per_epoch"] == 2
    assert (tmp_path / "results.json").is_file()
    assert {"CF1", "OF1", "top3_CF1", "top3_OF1"} <= set(result["test_thresholded"])
    assert set(result["test_thresholded"]["CF1"]) == {"total", "head", "medium", "tail"}
    assert result["test_per_class"]["thresholded"]["threshold"] == [0.0] * 10

    # The reported mAPs are the means of the saved per-class APs over the classes of each group
    # (head >= 100 training images, tail < 20; the demo's small set has no head class here).
    saved = json.loads((tmp_path / "results.json").read_text())
    ap = np.array([math.nan if a is None else a for a in saved["test_per_class"]["ap"]])
    assert ((ap >= 0) & (ap <= 1) | np.isnan(ap)).all()
    counts = np.array(saved["train_counts"])
    members = {
        "total": counts >= 0,
        "head": counts >= 100,
        "medium": (counts >= 20) & (counts < 100),
        "tail": counts < 20,
    }
    for name, chosen in members.items():
        kept = ap[chosen & ~np.isnan(ap)]
        expected = 100 * kept.mean() if kept.size else math.nan
        np.testing.assert_allclose(result["test"][name], expected, rtol=1e-12)


@pytest.mark.parametrize(
    ("row", "unknown", "scheme"),
    [
        ("comic-2stage", "ignore", "random"),
        ("asl", "negative", "positives"),
        ("ltml", "ignore", "per-class"),
    ],
)
def test_missing_labels_reach_the_loss_and_spare_the_test_set(
    row: str, unknown: str, scheme: str, tmp_path: Path
) -> None:
    flags = [*TINY_DEMO, "--row", row, "--epochs", "2", "--no-plot", "--output", str(tmp_path)]
    cfg = resolve(
        [*flags, "--missing-rate", "0.4", "--missing-scheme", scheme, "--unknown", unknown]
    )
    data = build_data(cfg)
    hidden = data.train_labels == -1
    assert torch.equal(data.train_labels, drop_labels(full_labels(), 0.4, scheme=scheme, seed=0))
    _, y = data.train[int(hidden.any(dim=1).nonzero()[0])]
    assert bool((y == -1).any())  # the loader serves the partial labels
    assert bool((torch.as_tensor(data.test.labels) >= 0).all())  # tests stay fully labelled
    model = build_model(cfg, data.train_labels)
    criterion = model.criterion.cls_u
    assert all(m.unknown == unknown for m in criterion.modules() if hasattr(m, "unknown"))
    result = run(cfg)
    assert 0 < result["test"]["total"] <= 100
    if row == "comic-2stage":  # the corrector ran (epoch 1 on) and kept its pseudo-counts per epoch
        state = _state(tmp_path / "last.pt")["model"]
        assert "criterion.cls_u.rlc.running_mean" in state
        assert bool((state["criterion.cls_u.rlc.running_mean"] > 0).all())


def full_labels() -> torch.Tensor:
    """The tiny demo's training labels before any drop (seed 0, 40 images of the top digit)."""
    return torch.as_tensor(make_demo("train", seed=0, max_count=40).labels)


def test_missing_rate_is_checked(tmp_path: Path) -> None:
    with pytest.raises(SystemExit):
        resolve([*TINY_DEMO, "--missing-rate", "1.0"])


def test_bf16_autocast_on_cpu(tmp_path: Path) -> None:
    result = run(
        resolve(
            [*TINY_DEMO, "--amp", "bf16", "--epochs", "1", "--no-plot", "--output", str(tmp_path)]
        )
    )
    assert all(math.isfinite(h["loss"]) for h in result["history"])


def test_validation_split_is_held_out_of_training(tmp_path: Path) -> None:
    from ltml.data import make_demo

    # a quarter of a tiny set: rare digits have no positive in it, which the meter reports,
    # naming the classes (the digits)
    with pytest.warns(UserWarning, match=r"no positive target \(classes '\d' \(\d\)"):
        result = run(
            resolve(
                [
                    *TINY_DEMO,
                    "--row",
                    "erm",
                    "--epochs",
                    "1",
                    "--no-plot",
                    "--val-fraction",
                    "0.25",
                    "--eval-every-epoch",
                    "--fit-thresholds",
                    "--output",
                    str(tmp_path),
                ]
            )
        )
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["thresholds"] == "fitted on validation"
    fitted = saved["test_per_class"]["thresholded"]["threshold"]
    assert len(fitted) == 10
    assert fitted != [0.0] * 10
    total = len(make_demo("train", seed=0, max_count=40))
    assert result["val_images"] == round(0.25 * total)
    assert result["train_images"] == total - result["val_images"]
    assert result["history"][0]["val"].keys() == {"total", "head", "medium", "tail"}


def _write_voc(root: Path, year: str, ids: list[str], classes: list[list[str]], split: str) -> None:
    voc = root / "VOCdevkit" / f"VOC{year}"
    for sub in ("JPEGImages", "Annotations", "ImageSets/Main"):
        (voc / sub).mkdir(parents=True, exist_ok=True)
    g = torch.Generator().manual_seed(int(year))
    for image_id, names in zip(ids, classes, strict=True):
        pixels = torch.randint(0, 256, (24, 32, 3), generator=g, dtype=torch.uint8).numpy()
        Image.fromarray(pixels).save(voc / "JPEGImages" / f"{image_id}.jpg")
        objects = "".join(
            f"<object><name>{n}</name><difficult>{k % 2}</difficult></object>"
            for k, n in enumerate(names)
        )
        (voc / "Annotations" / f"{image_id}.xml").write_text(
            f"<annotation><filename>{image_id}.jpg</filename>{objects}</annotation>"
        )
    (voc / "ImageSets" / "Main" / f"{split}.txt").write_text("\n".join(ids) + "\n")


@pytest.fixture
def voc_root(tmp_path: Path) -> Path:
    """A tiny VOCdevkit: 20 VOC2012 images (16 in the LT list), 10 VOC2007 test images."""
    from ltml.data import VOC_CLASSES

    names = list(VOC_CLASSES)
    train_ids = [f"2008_{i:06d}" for i in range(20)]
    # the 16 listed images cover every class: image i holds class i, and i + 16 for i < 4
    train_classes = [[names[i]] + ([names[i + 16]] if i < 4 else []) for i in range(20)]
    _write_voc(tmp_path, "2012", train_ids, train_classes, "trainval")
    test_ids = [f"{i:06d}" for i in range(10)]
    _write_voc(tmp_path, "2007", test_ids, [[names[i], names[i + 10]] for i in range(10)], "test")
    lists = tmp_path / "VOCdevkit" / "longtail2012"
    lists.mkdir()
    (lists / "img_id.txt").write_text("\n".join(train_ids[:16]) + "\n")
    return tmp_path


def _voc_flags(root: Path, output: Path) -> list[str]:
    """The flags of a VOC-LT run on the tiny tree, without weights to download."""
    return ["--dataset", "voc-lt", "--data-root", str(root), "--weights", "none",
            "--output", str(output)]  # fmt: skip


def test_voc_lt_end_to_end(voc_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    flags = [
        *_voc_flags(voc_root, out),
        "--arch",
        "resnet18",
        "--image-size",
        "32",
        "--batch-size",
        "4",
        "--iters-per-epoch",
        "2",
        "--epochs",
        "1",
        "--row",
        "ltml-flip",
        "--workers",
        "0",
        "--no-progress",
    ]
    result = run(resolve(flags))
    # --weights none: the recipe's freezing (for ImageNet weights) is off unless asked
    assert not result["config"]["freeze_stem"]
    assert not result["config"]["bn_eval"]
    assert result["train_counts"] == [1] * 20
    saved = json.loads((out / "results.json").read_text())
    assert saved["test"].keys() == {"total", "head", "medium", "tail"}
    assert (out / "per_class_ap.png").stat().st_size > 0


def test_voc_lt_without_the_list_names_the_fix(voc_root: Path, tmp_path: Path) -> None:
    (voc_root / "VOCdevkit" / "longtail2012" / "img_id.txt").unlink()
    cfg = resolve(_voc_flags(voc_root, tmp_path))
    with pytest.raises(FileNotFoundError, match=r"img_id\.txt not found.*--download-lists"):
        run(cfg)


def test_train_script_command_line(tmp_path: Path) -> None:
    import ltml

    # the script must import the same ltml as this test process
    env = {**os.environ, "PYTHONPATH": str(Path(ltml.__file__).resolve().parents[1])}
    cmd = [
        sys.executable,
        str(HARNESS / "train.py"),
        *TINY_DEMO[:-1],
        "--epochs",
        "1",
        "--threads",
        "1",
        "--row",
        "u-only",
        "--output",
        str(tmp_path),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert "row: u-only (uniform branch only)" in done.stdout  # configuration echo
    assert "iterations" in done.stdout
    # settings the run does not apply say so: channels_last on the CPU, freezing without weights
    assert "channels_last        = True  (CUDA only: not applied on cpu)" in done.stdout
    assert "freeze_stem          = False  (--weights none: the recipe's" in done.stdout
    assert "u-only: measured" in done.stdout  # results table
    assert (tmp_path / "per_class_ap.png").is_file()


# ------------------------------------------------------------------------------------------------
# Decoupled (stage-2) and deferred rows
# ------------------------------------------------------------------------------------------------

# row -> (stage-1 row, stage 2, tau-norm bias, LWS bias, deferred)
DECOUPLED_ROWS = {
    "crt": ("erm", "crt", False, False, "none"),
    "ncm": ("erm", "ncm", False, False, "none"),
    "tau-norm": ("erm", "tau-norm", True, False, "none"),
    "lws": ("erm", "lws", False, True, "none"),
    "logit-adjust": ("erm", "logit-adjust", False, False, "none"),
    "ltml-crt": ("ltml", "crt", False, False, "none"),
}


@pytest.mark.parametrize("row", sorted(DECOUPLED_ROWS))
def test_decoupled_presets(row: str, tmp_path: Path) -> None:
    from ltml_example.decoupled import stage1_config

    cfg = resolve(["--dataset", "voc-lt", "--data-root", str(tmp_path), "--row", row])
    first, stage2, tau_bias, lws_bias, _ = DECOUPLED_ROWS[row]
    assert (cfg.stage2, cfg.tau_bias, cfg.lws_bias, cfg.val_fraction) == (
        stage2,
        tau_bias,
        lws_bias,
        0.1,
    )
    s1 = stage1_config(cfg)
    assert _row_fields(s1) == EXPECTED_ROWS[first]
    assert (s1.row, s1.stage2, s1.val_fraction, s1.seed) == (first, "none", 0.1, cfg.seed)


def test_deferred_presets_and_switch_epoch(tmp_path: Path) -> None:
    from ltml_example.config import switch_epoch

    drw = resolve(["--dataset", "voc-lt", "--data-root", str(tmp_path), "--row", "drw"])
    drs = resolve(["--row", "drs", "--switch-epoch", "3"])
    assert _row_fields(drw) == EXPECTED_ROWS["erm"]
    assert (drw.deferred, switch_epoch(drw)) == ("reweight", 5)  # the first lr step
    assert (drs.deferred, switch_epoch(drs)) == ("resample", 3)


def test_mixup_presets_and_schedule() -> None:
    from ltml_example.config import mixes, switch_epoch

    mixup, bot = resolve(["--row", "mixup"]), resolve(["--row", "bot"])
    assert (mixup.mixup, mixup.mix_method, mixup.deferred) == (1.0, "mixup", "none")
    assert [mixes(mixup, e) for e in range(8)] == [True] * 8
    # Bag of Tricks: mixed through the class-aware epochs (from the lr step, epoch 6), then one
    # unmixed fine-tune epoch
    assert (bot.mixup, bot.deferred, switch_epoch(bot)) == (1.0, "resample", 6)
    assert [mixes(bot, e) for e in range(8)] == [True] * 7 + [False]
    assert [mixes(resolve(["--row", "bot", "--mixup-stop", "2"]), e) for e in range(4)] == [
        True,
        True,
        False,
        False,
    ]
    assert not any(mixes(resolve(["--row", "erm"]), e) for e in range(8))


def test_mixup_reaches_the_loss_as_soft_targets_and_resumes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ltml_example.model import Collaborative

    seen: list[torch.Tensor] = []
    forward = Collaborative.forward

    def spy(self: Collaborative, *streams: torch.Tensor | None) -> torch.Tensor:
        seen.extend(t for t in streams[1::2] if t is not None)
        return forward(self, *streams)

    monkeypatch.setattr(Collaborative, "forward", spy)
    flags = [*TINY_DEMO, "--row", "bot", "--epochs", "2", "--switch-epoch", "1"]
    flags += ["--mixup-stop", "1", "--no-plot"]
    straight = run(resolve([*flags, "--output", str(tmp_path / "a")]))
    # epoch 0 mixes (soft targets), epoch 1 is the unmixed fine-tune (0 / 1 targets)
    assert len(seen) == 4
    assert all(((y > 0) & (y < 1)).any() for y in seen[:2])
    assert all(((y == 0) | (y == 1)).all() for y in seen[2:])
    run(resolve([*flags, "--output", str(tmp_path / "b"), "--epochs", "1"]))
    resumed = run(resolve([*flags, "--output", str(tmp_path / "b"), "--resume", "auto"]))
    a, b = _state(tmp_path / "a" / "last.pt"), _state(tmp_path / "b" / "last.pt")
    _assert_equal_states(a["model"], b["model"])
    assert json.dumps(straight["test"]) == json.dumps(resumed["test"])
    # with mixing stopped at epoch 0 the row trains exactly as DRS: the mixing draws come from
    # their own generator, never from the global one
    drs = [*TINY_DEMO, "--epochs", "2", "--switch-epoch", "1", "--no-plot"]
    run(resolve([*drs, "--row", "drs", "--output", str(tmp_path / "drs")]))
    run(resolve([*flags, "--mixup-stop", "0", "--output", str(tmp_path / "c")]))
    c, d = _state(tmp_path / "c" / "last.pt"), _state(tmp_path / "drs" / "last.pt")
    _assert_equal_states(c["model"], d["model"])
    assert not all(torch.equal(a["model"][k], d["model"][k]) for k in d["model"])


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--mixup", "-1"], "--mixup must be >= 0 (0 = off), got -1.0"),
        (["--row", "db-focal", "--mixup", "1"], "--cls-loss db-focal rejects"),
        (["--row", "erm", "--mixup-stop", "2"], "--mixup-stop ends mixing: set --mixup"),
        (["--row", "bot", "--mixup-stop", "-1"], "--mixup-stop must be an epoch >= 0, got -1"),
    ],
)
def test_bad_mixup_flags(
    flags: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        resolve(flags)
    assert message in capsys.readouterr().err


def _write_table(root: Path, n: int = 40) -> Path:
    """A tiny image folder and tags table: 3 classes with 30 / 10 / 6 images."""
    (root / "img").mkdir(parents=True)
    g = torch.Generator().manual_seed(0)
    rows = ["image,tags"]
    for i in range(n):
        pixels = torch.randint(0, 256, (16, 16, 3), generator=g, dtype=torch.uint8).numpy()
        Image.fromarray(pixels).save(root / "img" / f"{i}.png")
        tags = [t for t, last in (("common", 30), ("medium", 10), ("rare", 6)) if i < last]
        rows.append(f"img/{i}.png,{'|'.join(tags)}")
    (root / "labels.csv").write_text("\n".join(rows) + "\n")
    return root / "labels.csv"


def _csv_flags(table: Path, output: Path) -> list[str]:
    return ["--dataset", "csv", "--train-csv", str(table), "--image-root", str(table.parent),
            "--weights", "none", "--arch", "resnet18", "--image-size", "16", "--batch-size", "4",
            "--iters-per-epoch", "2", "--epochs", "1", "--workers", "0", "--no-progress",
            "--output", str(output)]  # fmt: skip


def test_csv_end_to_end_with_a_stratified_hold_out(tmp_path: Path) -> None:
    table = _write_table(tmp_path / "data")
    flags = [
        *_csv_flags(table, tmp_path / "run"),
        "--val-fraction",
        "0.2",
        "--test-fraction",
        "0.2",
    ]
    result = run(resolve([*flags, "--eval-every-epoch"]))
    assert result["classes"] == ["common", "medium", "rare"]
    # the stratifier keeps each class's share in every part: 60 / 20 / 20 % of 30, 10 and 6
    assert result["train_counts"] == [18, 6, 4]
    assert result["train_images"] + result["val_images"] == 32
    assert result["test"].keys() == {"total", "head", "medium", "tail"}
    saved = json.loads((tmp_path / "run" / "results.json").read_text())
    assert saved["history"][0]["val"].keys() == {"total", "head", "medium", "tail"}
    assert (tmp_path / "run" / "per_class_ap.png").stat().st_size > 0


def test_csv_with_a_test_table_and_every_kind_of_row(tmp_path: Path) -> None:
    table = _write_table(tmp_path / "data")
    test = table.parent / "test.csv"
    test.write_text("image,tags\nimg/0.png,rare|common\nimg/39.png,medium\n")
    for row in ("erm", "mixed"):
        out = tmp_path / row
        result = run(resolve([*_csv_flags(table, out), "--test-csv", str(test), "--row", row]))
        assert result["train_images"] == 40
        assert result["classes"] == ["common", "medium", "rare"]
        assert len(result["test_per_class"]["ap"]) == 3
    test.write_text("image,tags\nimg/0.png,unseen\n")
    with pytest.raises(ValueError, match=r"test\.csv, line 2: unknown tag 'unseen'"):
        run(resolve([*_csv_flags(table, tmp_path / "x"), "--test-csv", str(test)]))


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--stage2", "tau-norm"], "searches tau on a validation split"),
        (["--stage1", "x.pt"], "--stage1 loads the stage-1 model of a decoupled row"),
        (["--deferred", "reweight"], "--deferred switches a uniform BCE row"),
    ],
)
def test_bad_decoupled_flags(
    flags: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        resolve(flags)
    assert message in capsys.readouterr().err


def test_decoupled_rows_reuse_stage1_and_keep_ap_where_they_must(tmp_path: Path) -> None:
    base = [*TINY_DEMO, "--epochs", "1", "--no-plot"]
    crt = run(resolve([*base, "--row", "crt", "--output", str(tmp_path / "crt")]))
    stage1 = tmp_path / "crt" / "stage1" / "last.pt"
    assert crt["stage1_checkpoint"] == str(stage1)
    assert (tmp_path / "crt" / "stage1" / "features-u.pt").is_file()
    # the stage-1 run's own test evaluation agrees with the features' classifier
    own = json.loads((tmp_path / "crt" / "stage1" / "results.json").read_text())["test"]
    assert own["total"] == pytest.approx(crt["stage1_test"]["total"], abs=1e-4)
    assert not crt["per_class_ap_unchanged"]
    for row in ("tau-norm", "lws", "logit-adjust"):
        out = tmp_path / row
        result = run(resolve([*base, "--row", row, "--stage1", str(stage1), "--output", str(out)]))
        assert result["per_class_ap_unchanged"], row
        assert json.dumps(result["test"]) == json.dumps(crt["stage1_test"])
        assert set(result["test_thresholded"]) == {"CP", "CR", "CF1", "OP", "OR", "OF1"}
        assert not (out / "stage1").exists()  # loaded, not trained again
    searched = json.loads((tmp_path / "logit-adjust" / "results.json").read_text())["chosen"]
    assert len(searched["tau_search_val_cf1"]) == 21
    # a checkpoint of another row is refused
    with pytest.raises(ValueError, match="other settings"):
        run(
            resolve(
                [*base, "--row", "ltml-crt", "--stage1", str(stage1), "--output", str(tmp_path)]
            )
        )


@pytest.mark.parametrize("row", ["drw", "drs"])
def test_deferred_rows_train_and_resume(row: str, tmp_path: Path) -> None:
    flags = [*TINY_DEMO, "--row", row, "--epochs", "2", "--switch-epoch", "1", "--no-plot"]
    straight = run(resolve([*flags, "--output", str(tmp_path / "a")]))
    run(resolve([*flags, "--output", str(tmp_path / "b"), "--epochs", "1"]))
    resumed = run(resolve([*flags, "--output", str(tmp_path / "b"), "--resume", "auto"]))
    a, b = _state(tmp_path / "a" / "last.pt"), _state(tmp_path / "b" / "last.pt")
    _assert_equal_states(a["model"], b["model"])
    assert json.dumps(straight["test"]) == json.dumps(resumed["test"])


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--dataset", "csv", "--image-root", "."], "--train-csv is required for --dataset csv"),
        (["--dataset", "csv", "--train-csv", "t.csv"], "--image-root is required"),
        (["--dataset", "csv", "--train-csv", "t.csv", "--image-root", "."], "needs a test set"),
        (["--dataset", "csv", "--train-csv", "t.csv", "--image-root", ".", "--test-csv", "x.csv",
          "--test-fraction", "0.2"], "needs a test set: --test-csv or --test-fraction (not both)"),
        (["--dataset", "csv", "--train-csv", "t.csv", "--image-root", ".", "--test-fraction",
          "0.5", "--val-fraction", "0.5"], "--val-fraction + --test-fraction must be below 1"),
        (["--test-fraction", "0.2"], "--test-fraction applies to --dataset csv"),
    ],
)  # fmt: skip
def test_bad_csv_flags(flags: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        resolve(flags)
    assert message in capsys.readouterr().err


def _demo(
    output: Path,
    jobs: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> str:
    """Run the README's main command (demo.py's __main__), a few steps of two rows; its output."""
    argv = ["demo.py", "--rows", "erm", "u-only", "--seeds", "3", "--output", str(output),
            "--jobs", jobs, *TINY_DEMO[2:-2], "--epochs", "1", "--no-plot"]  # fmt: skip
    monkeypatch.setattr(sys, "argv", argv)
    capsys.readouterr()
    runpy.run_path(str(HARNESS / "demo.py"), run_name="__main__")
    return capsys.readouterr().out


def _without_seconds(out: str) -> str:
    text = re.sub(r"\(\d+ s\)", "(s)", out)
    return re.sub(r"; \d+ s per run, \d+ s in all \(\d at a time\)", "", text)


def test_demo_script_runs_through_its_flags(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # in parallel processes (one thread each), as on a machine with cores to spare
    out = _demo(tmp_path, "2", monkeypatch, capsys)
    assert "(2 at a time)" in out
    # the same runs one after the other: the same results, printed in the same order
    sequential = _demo(tmp_path / "one-by-one", "1", monkeypatch, capsys)
    assert "(1 at a time)" in sequential
    assert _without_seconds(sequential) == _without_seconds(out)
    for row in ("erm", "u-only"):
        saved = json.loads((tmp_path / f"{row}-seed3" / "results.json").read_text())
        alone = json.loads((tmp_path / "one-by-one" / f"{row}-seed3" / "results.json").read_text())
        for key in ("history", "test", "test_per_class", "test_thresholded"):
            assert saved[key] == alone[key], key
        assert saved["row"] == row
        assert saved["config"]["seed"] == 3
        assert saved["iterations_per_epoch"] == 2
        total = saved["test"]["total"]
        assert f"{row:<12} seed 3: total {total:.2f}" in out  # one line per run
        assert any(
            line.startswith(row) and f"{total:.2f}" in line for line in out.splitlines()[-3:]
        )
    assert "demo test mAP %, last epoch, seed 3" in out


def test_loss_args_reach_the_loss(tmp_path: Path) -> None:
    from ltml_example.model import build_criterion

    labels = torch.tensor([[1, 0], [0, 1], [1, 1]])
    db = build_criterion(
        resolve(["--row", "db-focal", "--loss-args", "gamma=0", "neg_scale=1"]), labels
    )
    assert (db.gamma, db.neg_scale) == (0.0, 1.0)
    asl = build_criterion(resolve(["--cls-loss", "asl", "--loss-args", "clip=0"]), labels)
    assert asl.clip == 0.0


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--row", "erm", "--loss-args", "gamma=0"], "applies to --cls-loss db-focal or asl"),
        (["--row", "db-focal", "--loss-args", "gamma"], "KEY=VALUE pairs of numbers, got 'gamma'"),
        (["--row", "db-focal", "--loss-args", "gamma=two"], "got 'gamma=two'"),
    ],
)  # fmt: skip
def test_bad_loss_args(flags: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        resolve(flags)
    assert message in capsys.readouterr().err


# ------------------------------------------------------------------------------------------------
# Runs without pretrained weights, data roots, user errors, what a run prints
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("flags", "freeze_stem", "bn_eval"),
    [
        ([], True, True),  # ImageNet weights: the DB recipe
        (["--weights", "none"], False, False),
        (["--weights", "none", "--freeze-stem"], True, False),
        (["--weights", "none", "--bn-eval"], False, True),
        (["--weights", "IMAGENET1K_V2", "--no-bn-eval"], True, False),
    ],
)
def test_without_weights_nothing_is_frozen_unless_asked(
    flags: list[str], freeze_stem: bool, bn_eval: bool, tmp_path: Path
) -> None:
    from ltml_example.config import describe

    for dataset in (["--dataset", "voc-lt", "--data-root", str(tmp_path)], CSV_FLAGS_ONLY):
        cfg = resolve([*dataset, *flags])
        assert (cfg.freeze_stem, cfg.bn_eval) == (freeze_stem, bn_eval)
    echo = {line.split("=")[0].strip(): line for line in describe(cfg).splitlines()}
    if "none" in flags and not freeze_stem:
        assert echo["freeze_stem"].endswith(
            "= False  (--weights none: the recipe's setting for ImageNet weights is off; "
            "--freeze-stem sets it)"
        )
    elif "none" in flags:
        assert (
            "(asked for, though --weights none starts from random weights)" in echo["freeze_stem"]
        )
    else:
        assert echo["freeze_stem"].endswith(f"= {freeze_stem}")


def test_a_model_without_weights_trains_its_stem_and_batch_norms() -> None:
    from ltml_example.model import BATCH_NORMS

    labels = torch.tensor([[1, 0], [0, 1]])
    cfg = resolve([*CSV_FLAGS_ONLY, "--weights", "none", "--arch", "resnet18"])
    model = build_model(cfg, labels)
    model.set_train_mode(cfg)
    assert all(p.requires_grad for p in model.parameters())
    assert all(m.training for m in model.modules() if isinstance(m, BATCH_NORMS))
    frozen = build_model(resolve([*TINY_DEMO[:2], "--freeze-stem", "--bn-eval"]), labels)
    frozen.set_train_mode(resolve([*TINY_DEMO[:2], "--bn-eval"]))
    assert not any(p.requires_grad for p in frozen.trunk.layer1.parameters())
    assert not any(m.training for m in frozen.modules() if isinstance(m, BATCH_NORMS))


@pytest.mark.parametrize("where", ["parent", "VOCdevkit"])
def test_voc_data_root_is_what_the_library_accepts(voc_root: Path, where: str) -> None:
    from ltml.data import VOCMultiLabel

    root = voc_root if where == "parent" else voc_root / "VOCdevkit"
    data = build_data(resolve(["--dataset", "voc-lt", "--data-root", str(root)]))
    listed = VOCMultiLabel(voc_root, image_list=voc_root / "VOCdevkit/longtail2012/img_id.txt")
    assert torch.equal(data.train_labels, listed.labels)
    assert len(data.test) == 10
    (voc_root / "VOCdevkit" / "longtail2012" / "img_id.txt").unlink()
    expected = voc_root / "VOCdevkit" / "longtail2012" / "img_id.txt"  # never VOCdevkit twice
    with pytest.raises(FileNotFoundError, match=f"training image list {expected} not found"):
        build_data(resolve(["--dataset", "voc-lt", "--data-root", str(root)]))


def _offline(monkeypatch: pytest.MonkeyPatch, hub: Path) -> None:
    """No weights in torch's cache (``hub``), and every download fails as it does offline."""
    import urllib.error

    def no_network(url: str, *args: object, **kwargs: object) -> None:
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(hub))
    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)


def test_offline_weights_name_the_cache_file_and_weights_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ltml_example.errors import UsageError
    from ltml_example.model import build_resnet

    _offline(monkeypatch, tmp_path / "hub")
    cfg = resolve([*TINY_DEMO[:2], "--weights", "IMAGENET1K_V1"])
    with pytest.raises(UsageError) as caught:
        build_resnet(cfg)
    message = str(caught.value)
    cached = tmp_path / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
    url = "https://download.pytorch.org/models/resnet18-f37072fd.pth"
    needs = ["torch.hub.get_dir()/checkpoints", "--weights none", "name resolution"]
    for needed in (f"could not be downloaded from {url}", f"copy that file to {cached}", *needs):
        assert needed in message, needed
    assert build_resnet(resolve([*TINY_DEMO[:2], "--weights", "none"])) is not None


def _script_error(
    script: str,
    argv: list[str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> str:
    """Run a script's ``__main__`` on ``argv``: it must exit with status 2; return its stderr."""
    monkeypatch.setattr(sys, "argv", [script, *argv])
    with pytest.raises(SystemExit) as caught:
        runpy.run_path(str(HARNESS / script), run_name="__main__")
    assert caught.value.code == 2
    return capsys.readouterr().err


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--amp", "fp16", "--device", "cpu"], "--amp fp16 needs CUDA; on the CPU use --amp bf16"),
        (["--weights", "IMAGENET1K_V1"], "--weights IMAGENET1K_V1: the ImageNet weights of "
         "resnet18 are not in torchvision's cache"),
        (["--resume", "nowhere.pt"], "--resume: checkpoint nowhere.pt not found"),
    ],
)  # fmt: skip
def test_user_errors_are_one_paragraph_not_a_traceback(
    flags: list[str],
    message: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _offline(monkeypatch, tmp_path / "hub")
    argv = [*TINY_DEMO, "--epochs", "1", "--no-plot", "--output", str(tmp_path / "run"), *flags]
    err = _script_error("train.py", argv, monkeypatch, capsys)
    assert err.startswith(f"train.py: error: {message}")
    assert err.count("\n") == 1  # one paragraph
    assert "Traceback" not in err


def test_script_errors_of_data_and_resume_are_one_paragraph(
    voc_root: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    (voc_root / "VOCdevkit" / "longtail2012" / "img_id.txt").unlink()
    err = _script_error("train.py", _voc_flags(voc_root, tmp_path), monkeypatch, capsys)
    assert err.startswith("train.py: error: training image list ")
    assert err.rstrip().endswith("pass --train-list, or add --download-lists")
    table = _write_table(tmp_path / "data")
    table.write_text(table.read_text() + "img/missing.png,rare\n")
    csv = [*_csv_flags(table, tmp_path / "x"), "--test-fraction", "0.2"]
    err = _script_error("train.py", csv, monkeypatch, capsys)
    assert err.startswith(f"train.py: error: --train-csv {table}: ")
    assert "missing.png" in err
    flags = [*TINY_DEMO, "--row", "erm", "--epochs", "1", "--no-plot", "--output", str(tmp_path)]
    run(resolve(flags))
    err = _script_error("train.py", [*flags, "--resume", "auto", "--lr", "0.2"], monkeypatch,
                        capsys)  # fmt: skip
    assert err.startswith("train.py: error: --resume ")
    assert "other settings: lr=0.05 (now 0.2)" in err
    assert "Traceback" not in err


def test_demo_tells_a_usage_error_of_its_runs_in_one_paragraph(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--rows", "erm", "--output", str(tmp_path), "--jobs", "1", *TINY_DEMO[2:-2], "--amp",
            "fp16", "--device", "cpu"]  # fmt: skip
    err = _script_error("demo.py", argv, monkeypatch, capsys)
    assert err == (
        "demo.py: error: erm seed 0 failed: --amp fp16 needs CUDA; on the CPU use --amp bf16 "
        "or off\n"
    )
    outcome = json.loads((tmp_path / "erm-seed0" / "outcome.json").read_text())
    assert (outcome["status"], outcome["usage_error"]) == ("failed", True)


def test_a_bug_keeps_its_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    import ltml_example

    def broken(cfg: object) -> None:
        raise KeyError("a bug, not the user's mistake")

    monkeypatch.setattr(ltml_example, "run", broken)
    monkeypatch.setattr(sys, "argv", ["train.py", *TINY_DEMO])
    with pytest.raises(KeyError, match="a bug"):
        runpy.run_path(str(HARNESS / "train.py"), run_name="__main__")


def test_the_epoch_line_says_what_an_epoch_is() -> None:
    from ltml_example.data import epoch_line

    labels = torch.zeros(50, 10, dtype=torch.int64)
    labels[:40, 0] = 1
    labels[40:, 1:] = 1
    rule = resolve([*TINY_DEMO[:2], "--batch-size", "8", "--epochs", "3"])
    assert epoch_line(rule, labels, 1) == (
        "epoch = 13 iterations (rule 'db': 100 draws per stream) of 16 images x 1 process(es), "
        "104 draws per stream; 3 epochs = 39 iterations"
    )
    given = resolve([*TINY_DEMO[:2], "--row", "erm", "--batch-size", "8", "--iters-per-epoch",
                     "2", "--epochs", "3"])  # fmt: skip
    assert epoch_line(given, labels, 2) == (
        "epoch = 2 iterations (--iters-per-epoch, in place of the rule 'db': 100 draws per "
        "stream) of 8 images x 2 process(es), 32 draws per stream; 3 epochs = 6 iterations"
    )
    assert iterations_per_epoch(given, labels, world=2) == (32, 2)


def test_group_thresholds_flag_sets_the_reported_groups(tmp_path: Path) -> None:
    from ltml_example.config import group_line

    flags = [*TINY_DEMO, "--row", "erm", "--epochs", "1", "--no-plot", "--output", str(tmp_path)]
    result = run(resolve([*flags, "--group-thresholds", "3", "10"]))
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["config"]["group_thresholds"] == [3, 10]
    ap = np.array([math.nan if a is None else a for a in saved["test_per_class"]["ap"]])
    counts = np.array(saved["train_counts"])
    for name, chosen in (("head", counts >= 10), ("medium", (counts >= 3) & (counts < 10)),
                         ("tail", counts < 3)):  # fmt: skip
        kept = ap[chosen & ~np.isnan(ap)]
        assert kept.size
        np.testing.assert_allclose(result["test"][name], 100 * kept.mean(), rtol=1e-12)
    # limits that put every class in one group are told
    line = group_line(resolve([*flags, "--group-thresholds", "0", "0"]), torch.tensor([5, 9]))
    assert line == (
        "groups (tail < 0 <= medium < 0 <= head training images): head 2, medium 0, tail 0; "
        "every class is head, so the group mAPs only repeat the total: choose "
        "--group-thresholds LOW HIGH that split your counts"
    )


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--group-thresholds", "100", "20"], "needs 0 <= LOW <= HIGH, got 100 20"),
        (["--group-thresholds", "20"], "expected 2 arguments"),
    ],
)  # fmt: skip
def test_bad_group_thresholds(
    flags: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        resolve(flags)
    assert message in capsys.readouterr().err


def test_per_class_figure_keeps_every_label_inside() -> None:
    import ltml
    from ltml_example.report import per_class_figure

    counts = [int(500 * 0.7**k) + 1 for k in range(20)]
    names = [f"class {k}" + (" with a long descriptive name" * (k % 2)) for k in range(20)]
    fig = per_class_figure([0.5] * 20, counts, ltml.class_groups(counts), names, "a title")
    fig.canvas.draw()
    renderer, frame = fig.canvas.get_renderer(), fig.bbox
    bars, counts_axis = fig.axes  # the AP bars, and its twin: the training counts
    texts = [bars.title, bars.yaxis.label, counts_axis.yaxis.label, *bars.get_xticklabels()]
    assert len(texts) == 23
    for text in texts:
        if text.get_text():
            box = text.get_window_extent(renderer)
            assert frame.x0 <= box.x0, text.get_text()
            assert box.x1 <= frame.x1, text.get_text()
            assert frame.y0 <= box.y0, text.get_text()
            assert box.y1 <= frame.y1, text.get_text()


@pytest.mark.slow
def test_demo_training_beats_chance_by_fifteen_points(tmp_path: Path) -> None:
    # The demo's default schedule (about a minute on 2 cores), ERM: the README's numbers are
    # 44 +- 1 total mAP over seeds. A random ranking has an AP of about the class's prevalence in
    # the test set, so chance is the mean prevalence (about 20 here), computed from the labels.
    result = run(resolve(["--dataset", "demo", "--row", "erm", "--no-plot", "--threads", "2",
                          "--output", str(tmp_path)]))  # fmt: skip
    test_labels = torch.as_tensor(make_demo("test", seed=0).labels, dtype=torch.float64)
    chance = 100 * test_labels.clamp(min=0).mean(dim=0).mean().item()
    assert 15 < chance < 25
    assert result["test"]["total"] > chance + 15


def test_balanced_row_draws_from_the_fitted_sampler() -> None:
    from ltml_example.data import train_loader

    cfg = resolve([*TINY_DEMO, "--row", "balanced"])
    data = build_data(cfg)
    loader, sampler = train_loader(cfg, data, iters=3, world=1, rank=0, pin_memory=False)
    stream = sampler.paired.balanced  # the re-balanced side of the pair
    assert isinstance(stream, ltml.BalancedSampler)
    assert stream.num_draws == 3 * cfg.batch_size
    assert len(loader) == 3
    # Every image it draws carries a known positive: the fitted weights leave the others out.
    drawn = list(stream)
    assert all(data.train_labels[i].eq(1).any() for i in drawn)


@pytest.mark.parametrize(("row", "head"), [("csra", ltml.CSRA), ("ml-decoder", ltml.MLDecoder)])
def test_attention_head_rows_train_and_report(row: str, head: type, tmp_path: Path) -> None:
    cfg = resolve(
        [*TINY_DEMO, "--row", row, "--epochs", "1", "--no-plot", "--output", str(tmp_path)]
    )
    assert (cfg.head, cfg.branches, cfg.cls_loss) == (row, "u", "bce")
    result = run(cfg)
    assert result["iterations_per_epoch"] == 2
    assert 0 <= result["test"]["total"] <= 100
    state = _state(tmp_path / "last.pt")["model"]
    model = build_model(cfg, torch.zeros(4, 10))
    assert isinstance(model.head.branch_u.classifier, head)
    model.load_state_dict(state)  # the checkpoint holds the attention head's parameters


def test_decoupled_rows_refuse_an_attention_head(tmp_path: Path) -> None:
    with pytest.raises(SystemExit):
        resolve([*TINY_DEMO, "--row", "crt", "--head", "csra", "--output", str(tmp_path)])


# ------------------------------------ the field since 2021: rfs, hill, splc, comic (three stages)


@pytest.mark.parametrize("row", ["rfs", "hill", "splc", "comic"])
def test_field_rows_train_a_tiny_run(row: str, tmp_path: Path) -> None:
    flags = [*TINY_DEMO, "--row", row, "--epochs", "2", "--no-plot", "--output", str(tmp_path)]
    result = run(resolve([*flags, "--missing-rate", "0.4"]))
    assert result["iterations_per_epoch"] == 2
    assert 0 < result["test"]["total"] <= 100
    assert (tmp_path / "results.json").is_file()


def test_rfs_row_draws_from_the_repeat_factor_sampler() -> None:
    from ltml_example.data import train_loader

    cfg = resolve([*TINY_DEMO, "--row", "rfs", "--repeat-threshold", "0.5"])
    data = build_data(cfg)
    loader, sampler = train_loader(cfg, data, iters=3, world=1, rank=0, pin_memory=False)
    stream = sampler.paired.balanced
    assert isinstance(stream, ltml.RepeatFactorSampler)
    assert stream.threshold == 0.5
    assert stream.num_draws == 3 * cfg.batch_size
    assert len(loader) == 3
    assert torch.equal(stream.factors, ltml.repeat_factors(data.train_labels, 0.5))


def test_hill_and_splc_rows_read_unknown_labels_as_negatives(tmp_path: Path) -> None:
    labels = full_labels()
    for row, kind in (("hill", ltml.HillLoss), ("splc", ltml.SPLCLoss)):
        cfg = resolve([*TINY_DEMO, "--row", row, "--output", str(tmp_path)])
        criterion = build_model(cfg, labels).criterion.cls_u
        assert isinstance(criterion, kind)
        assert criterion.unknown == "negative"
    model = build_model(resolve([*TINY_DEMO, "--row", "splc"]), labels)
    model.set_epoch(1)  # SPLC corrects from epoch 1 on, told by the loop
    assert model.criterion.cls_u.epoch == 1


def test_comic_row_trains_the_balanced_branch_through_both_experts() -> None:
    cfg = resolve([*TINY_DEMO, "--row", "comic"])
    labels = full_labels()
    model = build_model(cfg, labels)
    assert model.balance is not None
    assert isinstance(model.balance.balancer, ltml.HeadTailBalancer)
    x = torch.randn(4, 3, 32, 32)
    loss = model(x, labels[:4], x.flip(0), labels[4:8])
    loss.backward()
    # the balanced branch learns; it predicts, with its own logits
    assert model.balance.branch.classifier.weight.grad is not None
    model.eval()
    expected = model.balance.branch(model.trunk(x))
    torch.testing.assert_close(model.predict(x), expected)
    # its loss leaves the experts' parameters to their own losses
    model.zero_grad()
    out = model.head(*ltml.paired_forward(model.trunk, x, x.flip(0)), cross=False)
    tail = model.head.branch_r(model.trunk(x)).detach()
    model.balance(model.trunk(x), out.u.detach(), tail, labels[:4]).backward()
    assert model.head.branch_u.classifier.weight.grad is None
    assert model.head.branch_r.classifier.weight.grad is None


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--row", "comic-2stage", "--comic-balance"], "--comic-balance needs --cls-loss comic"),
        (["--row", "rfs", "--repeat-threshold", "0"], "--repeat-threshold must be in (0, 1]"),
        (["--row", "drs", "--sampler-mode", "repeat-factor"], "not --sampler-mode repeat-factor"),
        (["--row", "splc", "--mixup", "1"], "--cls-loss splc rejects"),
    ],
)
def test_field_rows_bad_flags(
    flags: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        resolve([*TINY_DEMO, *flags])
    assert message in capsys.readouterr().err
