"""One command that checks the CUDA paths and measures what a GPU-hour buys (under 10 minutes).

On a machine with CUDA::

    PYTHONPATH=src python benchmarks/gpu_check.py --out gpu-report/

1. the CUDA-only tests (tests/test_cuda.py) and the fake-CUDA / sync-free ones, in a subprocess;
2. for each example row and autocast dtype (fp16 with GradScaler, bf16), ``--iters`` training
   steps of the harness's model (ResNet-50, channels_last, 32 + 32 images of 224 px, synthetic
   VOC-LT-shaped labels: 20 classes, long-tailed): losses finite, images/s, and the synchronising
   calls made by the steps (``torch.cuda.set_sync_debug_mode('warn')``, counted);
3. the two-branch / single-branch step time ratio, eager and under ``torch.compile``;
4. the meter and the thresholded metrics computed on the device against the CPU's values;
5. the training loader's images/s (``--pipeline uint8``) with worker processes, and from the
   device cache (batches augmented on the GPU).

It writes ``report.json`` and ``report.md`` into ``--out``. ``--dry-run`` runs every part on the
CPU at toy sizes (2 steps, a 32 px ResNet-18, ``torch.compile`` with the eager backend), so CI
checks that the script still runs (tests/test_gpu_check.py); its figures mean nothing.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "examples" / "reproduce"))
sys.path.insert(0, str(ROOT / "benchmarks"))

import ltml  # noqa: E402
from bench_input import synthetic_jpegs  # noqa: E402
from ltml_example import resolve  # noqa: E402
from ltml_example.model import build_model  # noqa: E402
from ltml_example.pipeline import (  # noqa: E402
    DecodedImages,
    ImageCache,
    augment_batch,
    cache_side,
    uint8_transform,
)

ROWS = ("ltml", "u-only", "erm", "db-focal", "comic", "mixup")
TESTS = ("tests/test_cuda.py", "tests/test_fake_cuda.py", "tests/test_sync_free.py")


@dataclasses.dataclass
class Setting:
    """Sizes of one check: the real ones on a GPU, toy ones for ``--dry-run``."""

    device: torch.device
    iters: int
    batch: int
    image_size: int
    arch: str
    compile_backend: str
    loader_images: int
    workers: int


def voc_lt_labels(n: int = 1142, classes: int = 20, seed: int = 0) -> torch.Tensor:
    """Long-tailed multi-label targets of VOC-LT's shape: class k in about 775 * 0.75**k images."""
    g = torch.Generator().manual_seed(seed)
    rate = torch.tensor([min(0.68, 775 * 0.75**k / n) for k in range(classes)])
    labels = (torch.rand(n, classes, generator=g) < rate).long()
    k = torch.arange(classes)
    labels[k % n, k] = 1  # every class has a positive
    return labels


def _sync_counter() -> tuple[Callable[[], int], Callable[[], None]]:
    """Start counting synchronising CUDA calls; return (count, stop). Zero and no-op on CPU."""
    if not torch.cuda.is_available():
        return (lambda: 0), (lambda: None)
    caught = warnings.catch_warnings(record=True)
    log = caught.__enter__()
    warnings.simplefilter("always")
    torch.cuda.set_sync_debug_mode("warn")

    def stop() -> None:
        torch.cuda.set_sync_debug_mode("default")
        caught.__exit__(None, None, None)

    return (lambda: sum("synchroniz" in str(w.message) for w in log)), stop


def _wait(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def train_row(s: Setting, row: str, amp: str, compiled: bool = False) -> dict[str, Any]:
    """``s.iters`` steps of ``row`` on synthetic data; loss finiteness, images/s, syncs per step."""
    flags = ["--row", row, "--arch", s.arch, "--weights", "none", "--image-size",
             str(s.image_size), "--batch-size", str(s.batch)]  # fmt: skip
    cfg = resolve(flags)
    torch.manual_seed(0)
    labels = voc_lt_labels()
    model = build_model(cfg, labels).to(s.device)
    cuda = s.device.type == "cuda"
    if cuda:
        model = model.to(memory_format=torch.channels_last)
    model.set_train_mode(cfg)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(params, lr=1e-3, momentum=0.9)
    dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}[amp]
    scaler = torch.amp.GradScaler(s.device.type, enabled=dtype == torch.float16 and cuda)
    step_model: Callable[..., torch.Tensor] = model
    if compiled:
        step_model = torch.compile(model, backend=s.compile_backend)
    n = s.batch * (2 if cfg.branches in ("both", "mixed") else 1)
    g = torch.Generator().manual_seed(0)
    pool = torch.randn(8, n, 3, s.image_size, s.image_size, generator=g).to(s.device)
    if cuda:
        pool = pool.contiguous(memory_format=torch.channels_last) if pool.ndim == 4 else pool
    targets = labels[torch.randint(len(labels), (8, n), generator=g)].float().to(s.device)
    finite = torch.ones((), dtype=torch.bool, device=s.device)
    mixing = torch.Generator().manual_seed(1)

    def step(k: int) -> None:
        nonlocal finite
        x, y = pool[k % 8], targets[k % 8]
        if cfg.mixup > 0:  # the row's input mixing, on the device (its draws on the host)
            mixed = ltml.mix_batch(x, y, cfg.mixup, method=cfg.mix_method, generator=mixing)
            x, y = mixed.inputs, mixed.targets
        if cuda:
            x = x.contiguous(memory_format=torch.channels_last)
        if cfg.branches == "u":
            streams: tuple[Any, ...] = (x, y, None, None)
        elif cfg.branches == "r":
            streams = (None, None, x, y)
        else:
            streams = (x[: s.batch], y[: s.batch], x[s.batch :], y[s.batch :])
        with torch.autocast(s.device.type, dtype, enabled=cuda or dtype == torch.bfloat16):
            loss = step_model(*streams)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        finite = finite & torch.isfinite(loss.detach())

    warm = min(3, s.iters)
    for k in range(warm):  # cudnn autotuning, compilation
        step(k)
    _wait(s.device)
    count, stop = _sync_counter()
    t0 = time.perf_counter()
    try:
        for k in range(s.iters):
            step(k)
        _wait(s.device)
    finally:
        syncs = count()
        stop()
    seconds = time.perf_counter() - t0
    return {
        "row": row,
        "amp": amp,
        "compiled": compiled,
        "iters": s.iters,
        "images_per_step": n,
        "finite": bool(finite.item()),
        "images_per_s": n * s.iters / seconds,
        "ms_per_step": 1e3 * seconds / s.iters,
        "syncs_per_step": syncs / s.iters,
        "grad_scaler": scaler.is_enabled(),
    }


def branch_ratio(s: Setting) -> dict[str, Any]:
    """Two-branch (ltml, 32 + 32) over single-branch (u-only, 32) step time, eager and compiled."""
    out: dict[str, Any] = {}
    for compiled in (False, True):
        two = train_row(s, "ltml", "bf16", compiled)["ms_per_step"]
        one = train_row(s, "u-only", "bf16", compiled)["ms_per_step"]
        out["compiled" if compiled else "eager"] = {
            "two_ms": two,
            "one_ms": one,
            "ratio": two / one,
        }
    return out


def metrics_on_device(s: Setting) -> dict[str, Any]:
    """MAPMeter and thresholded_metrics on the device against the CPU (largest difference)."""
    g = torch.Generator().manual_seed(2)
    scores = torch.randn(5000, 80, generator=g)
    targets = (torch.rand(5000, 80, generator=g) < 0.05).long()
    targets[::11, 3] = -1
    results = []
    for device in (torch.device("cpu"), s.device):
        meter = ltml.mAPMeter(80, scores="logits", top_k=3)
        for k in range(0, 5000, 256):
            meter.update(scores[k : k + 256].to(device), targets[k : k + 256])
        r = meter.compute()
        t = ltml.functional.thresholded_metrics(
            scores.to(device), targets.to(device), threshold=0.0
        )
        results.append((r, t))
    (cpu, tc), (dev, td) = results
    ap_diff = (cpu.ap - dev.ap).nan_to_num().abs().max().item()
    of1 = abs(tc.OF1 - td.OF1)
    return {"map_cpu": cpu.map, "map_device": dev.map, "ap_max_diff": ap_diff, "of1_diff": of1}


def loader_speed(s: Setting) -> dict[str, Any]:
    """Training-loader images/s: uint8 pipeline with workers, and from the device cache."""
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        paths = synthetic_jpegs(Path(tmp), s.loader_images)
        labels = voc_lt_labels(len(paths))
        tf = uint8_transform(s.image_size, 0.5)
        data = DecodedImages(paths, labels, tf)
        loader = DataLoader(data, batch_size=s.batch, num_workers=s.workers, drop_last=True)
        t0 = time.perf_counter()
        seen = sum(len(x) for x, _ in loader)
        out["workers"] = {"workers": s.workers, "images_per_s": seen / (time.perf_counter() - t0)}
        side = cache_side(s.image_size)
        cached = DecodedImages(paths, labels, tf, ImageCache(paths, range(len(paths)), side, 2**34))
        cached.on_device(s.device)
        index_loader = DataLoader(cached, batch_size=s.batch, drop_last=True)
        _wait(s.device)
        t0 = time.perf_counter()
        seen = 0
        for batch in index_loader:
            x, _ = augment_batch(batch, cached)
            seen += len(x)
        _wait(s.device)
        out["device_cache"] = {
            "device": str(s.device),
            "images_per_s": seen / (time.perf_counter() - t0),
        }
    return out


def run_tests(dry_run: bool) -> dict[str, Any]:
    """Run the CUDA-only, fake-CUDA and sync-free tests in a subprocess (collect when dry)."""
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *TESTS]
    if dry_run:
        cmd.append("--collect-only")
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    last = (done.stdout.strip().splitlines() or [""])[-1]
    return {"command": " ".join(cmd[1:]), "returncode": done.returncode, "summary": last}


def markdown(report: dict[str, Any]) -> str:
    """Format the report as a markdown page."""
    env = report["environment"]
    where = "dry run, CPU: figures mean nothing" if report["dry_run"] else env["device"]
    lines = [f"# GPU check ({where})", ""]
    lines += [f"- {k}: {v}" for k, v in env.items()]
    t = report["tests"]
    lines += ["", f"Tests: `{t['command']}` -> {t['summary']} (exit {t['returncode']})", ""]
    lines += [
        "| row | autocast | finite | images/s | ms / step | syncs / step |",
        "|---|---|---|---:|---:|---:|",
    ]
    for r in report["rows"]:
        lines.append(
            f"| {r['row']} | {r['amp']}{' + GradScaler' if r['grad_scaler'] else ''} | "
            f"{r['finite']} | {r['images_per_s']:.0f} | {r['ms_per_step']:.1f} | "
            f"{r['syncs_per_step']:.2f} |"
        )
    lines += ["", "Two-branch / single-branch step time:", ""]
    for mode, v in report["branch_ratio"].items():
        lines.append(f"- {mode}: {v['two_ms']:.1f} ms / {v['one_ms']:.1f} ms = {v['ratio']:.2f}")
    m = report["metrics"]
    lines += [
        "",
        f"Meter on the device: mAP {m['map_device']:.6f} (CPU {m['map_cpu']:.6f}), largest AP "
        f"difference {m['ap_max_diff']:.2e}, OF1 difference {m['of1_diff']:.2e}",
    ]
    ld = report["loader"]
    lines += [
        "",
        f"Loader, --pipeline uint8, {ld['workers']['workers']} workers: "
        f"{ld['workers']['images_per_s']:.0f} images/s; from the device cache "
        f"({ld['device_cache']['device']}): {ld['device_cache']['images_per_s']:.0f} images/s",
        "",
        f"Total: {report['seconds']:.0f} s",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("gpu-report"))
    parser.add_argument("--dry-run", action="store_true", help="toy sizes on the CPU (CI)")
    parser.add_argument("--iters", type=int, default=200, help="steps per row and dtype")
    parser.add_argument("--rows", nargs="+", default=list(ROWS), choices=ROWS)
    args = parser.parse_args(argv)
    start = time.perf_counter()
    cuda = torch.cuda.is_available() and not args.dry_run
    if not cuda and not args.dry_run:
        parser.error("no CUDA device: run with --dry-run (toy sizes on the CPU) or on a GPU")
    if cuda:
        torch.backends.cudnn.benchmark = True
        s = Setting(torch.device("cuda"), args.iters, 32, 224, "resnet50", "inductor", 512,
                    min(8, os.cpu_count() or 1))  # fmt: skip
    else:
        s = Setting(torch.device("cpu"), 2, 2, 32, "resnet18", "eager", 8, 0)
    report: dict[str, Any] = {
        "dry_run": args.dry_run,
        "environment": {
            "device": torch.cuda.get_device_name() if cuda else "cpu",
            "torch": torch.__version__,
            "cuda": torch.version.cuda,
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
        },
        "tests": run_tests(args.dry_run),
    }
    amps = ("fp16", "bf16") if cuda else ("bf16",)
    report["rows"] = [train_row(s, row, amp) for row in args.rows for amp in amps]
    report["branch_ratio"] = branch_ratio(s)
    report["metrics"] = metrics_on_device(s)
    report["loader"] = loader_speed(s)
    report["seconds"] = time.perf_counter() - start
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    (args.out / "report.md").write_text(markdown(report))
    print(markdown(report))
    return report


if __name__ == "__main__":
    main()
