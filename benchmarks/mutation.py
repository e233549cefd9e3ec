"""Mutation testing of the core modules with mutmut: the score per module and the survivors.

    python benchmarks/mutation.py                    # every module, one after the other
    python benchmarks/mutation.py samplers heads     # some modules
    python benchmarks/mutation.py --max-children 1   # parallel mutants (default 2)
    python benchmarks/mutation.py metrics --resume   # go on with a run, against today's tests
    python benchmarks/mutation.py losses --sample 500  # 500 mutants drawn at random, seeded

Each module is mutated in its own scratch copy of the repository (``build/mutation/<module>``, kept
so that ``mutmut show NAME`` / ``mutmut browse`` can be run there afterwards), and each mutant runs
only that module's test files and the contract battery (``tests/test_contracts.py``), without the
``slow``-marked tests, the two-process (gloo) tests, whose spawned ranks mutmut cannot follow, the
``torch.compile`` tests (dynamo cannot trace mutmut's trampolines) and the tests of the line a
warning points at (the trampolines add frames; the tests named ``..._past_trampolines`` check the
stacklevels there). A package (``losses``, ``metrics``, ``samplers``, ``decoupling``) is mutated as
one module: all its files. Error messages (``raise`` statements and ``warnings.warn``) are not
mutated: wrapping a message in ``XX`` keeps every ``match=`` regex matching, so those mutants
measure nothing.

mutmut runs for each mutant only the tests it saw reach the mutated function, which misses a test
that reaches it through a fixture another test built first; so each survivor is run once more
against all of the module's tests, and one that fails them is caught after all.

A surviving mutant is either a gap in the tests (write the test that kills it) or equivalent: no
input can tell it from the original. Equivalent mutants are listed, each with one line of why, in
``mutation_equivalents.txt`` beside this script, by function and mutated line (not by mutmut's
number, which moves as the code changes). The same list names the mutants that only an accelerator
can tell apart (a device argument that a CPU-only run cannot check), counted apart, out of the
score. A move or rename cannot drop entries silently: ``tests/test_mutation_list.py`` checks in the
test suite that every entry names a function of today's code and a line one edit from it, and a run
reports an entry of its module that matched no survivor as stale. The script prints the score per
module and every survivor not in that list, and exits with status 1 if there is one. It is slow
(minutes per module on two cores), so it is not part of the test suite or CI: run it after changing
a module or its tests. ``--sample N`` runs N mutants drawn uniformly (seeded) from the module's and
prints the score of the sample with its 95 % (Wilson) interval; ``--resume`` afterwards runs the
rest.
"""

from __future__ import annotations

import argparse
import math
import os
import random
import re
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EQUIVALENTS = Path(__file__).with_name("mutation_equivalents.txt")

# module -> (file, or glob of a package's files, to mutate; its tests, then the contract battery,
# where every public callable's argument checks are tested)
_CONTRACTS = "tests/test_contracts.py"
_METRIC_TESTS = [
    *("tests/test_metrics.py", "tests/test_metrics_thresholded.py", "tests/test_sync_free.py"),
    *("tests/test_sparse_inputs.py", _CONTRACTS),
]
_LOSS_TESTS = [
    *("tests/test_losses.py", "tests/test_losses_partial.py", "tests/test_losses_soft.py"),
    *("tests/test_losses_family.py", "tests/test_losses_robust.py", "tests/test_schedules.py"),
    *("tests/test_sync_free.py", _CONTRACTS),
]
MODULES = {
    "losses": ("src/ltml/losses/*", _LOSS_TESTS),
    "metrics": ("src/ltml/metrics/*", _METRIC_TESTS),
    "samplers": (
        "src/ltml/samplers/*",
        [
            *("tests/test_samplers.py", "tests/test_balanced_sampler.py"),
            "tests/test_balanced_fit.py",
            *("tests/test_repeat_factor_sampler.py", "tests/test_frameworks.py"),
            *("tests/test_schedules.py", "tests/test_sparse_inputs.py", _CONTRACTS),
        ],
    ),
    "label_forms": (
        "src/ltml/_label_forms.py",
        [
            "tests/test_label_forms.py",
            "tests/test_sparse_inputs.py",
            "tests/test_samplers.py",
            "tests/test_data_stats.py",
            _CONTRACTS,
        ],
    ),
    # test_backbones: the old home of resnet_dual_branch, served by heads.__getattr__
    "heads": ("src/ltml/heads.py", ["tests/test_heads.py", "tests/test_backbones.py", _CONTRACTS]),
    "decoupling": (
        "src/ltml/decoupling/*",
        ["tests/test_decoupling.py", "tests/test_sparse_inputs.py", _CONTRACTS],
    ),
    "backbones": ("src/ltml/backbones.py", ["tests/test_backbones.py", _CONTRACTS]),
    "data.demo": ("src/ltml/data/demo.py", ["tests/test_data_demo.py", _CONTRACTS]),
}

# the two-process gloo tests spawn their ranks outside mutmut's control: under a mutant they
# ended without a result and each such run waited for the test's 120 s time-out; dynamo
# cannot trace mutmut's trampolines (a ContextVar.set), so a fullgraph torch.compile test fails;
# and the trampolines add frames between a caller and ltml's warnings, so a test of the line a
# warning points at fails (the tests "..._past_trampolines" check the stacklevels there)
_UNRUNNABLE = [
    *("gloo", "ddp", "torch_compile"),
    *("test_warning_points_at_the_callers_line", "test_meter_warning_points_at_the_compute_call"),
    "test_deprecation_points_at_the_callers_line",
]
PYTEST_ARGS = [
    *("-p", "no:cacheprovider", "-m", "not slow"),
    *("-k", " and ".join(f"not {name}" for name in _UNRUNNABLE)),
]
MUTMUT_CONFIG = """
[tool.mutmut]
source_paths = ["src"]
only_mutate = ["{target}"]
pytest_add_cli_args_test_selection = {tests}
pytest_add_cli_args = {pytest_args}
do_not_mutate_patterns = ['^\\s*raise\\b', '^\\s*warnings\\.warn\\(']
process_isolation = "forkserver"  # torch is not fork-safe once the tests have run in a process
"""


def _mutmut(workdir: Path, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "mutmut", *args],
        cwd=workdir,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        command = " ".join(args)
        raise RuntimeError(f"mutmut {command} failed in {workdir}:\n{done.stdout}{done.stderr}")
    return done.stdout


def _prepare(name: str, target: str, tests: list[str], resume: bool = False) -> Path:
    """Copy src/, tests/ and pyproject.toml to a scratch folder set to mutate ``target`` only.

    With ``resume``, an existing folder keeps its code and settings (those of its mutants) and
    gets today's tests: mutmut then runs the mutants that have no result yet, and
    :func:`mutate` the survivors again.
    """
    workdir = ROOT / "build" / "mutation" / name
    if resume and (workdir / "mutants").is_dir():
        ignore = shutil.ignore_patterns("__pycache__")
        shutil.copytree(ROOT / "tests", workdir / "tests", ignore=ignore, dirs_exist_ok=True)
        return workdir
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    shutil.copytree(ROOT / "src", workdir / "src", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "tests", workdir / "tests", ignore=shutil.ignore_patterns("__pycache__"))
    pyproject = (ROOT / "pyproject.toml").read_text()
    # The doctests stay in the normal suite: here only the module's test files judge a mutant.
    pyproject = pyproject.replace('testpaths = ["src/ltml", "tests"]', 'testpaths = ["tests"]')
    pyproject = pyproject.replace(" --doctest-modules", "")
    quoted = _toml_list(tests)
    (workdir / "pyproject.toml").write_text(
        pyproject
        + MUTMUT_CONFIG.format(target=target, tests=quoted, pytest_args=_toml_list(PYTEST_ARGS))
    )
    return workdir


def _toml_list(items: list[str]) -> str:
    return "[" + ", ".join(f'"{item}"' for item in items) + "]"


def _draw_sample(workdir: Path, size: int) -> list[str]:
    """Generate the module's mutants without running them and draw ``size`` of them (seed 0).

    mutmut 3.8 has no command that only generates: ``run`` with a filter that matches no mutant
    generates them and maps tests to functions, then stops (an assertion: nothing matches).
    """
    subprocess.run(
        [sys.executable, "-m", "mutmut", "run", "no-such-mutant"],
        cwd=workdir,
        capture_output=True,
        check=False,
    )
    names = sorted(_status(workdir))
    if not names:
        raise RuntimeError(f"mutmut generated no mutants in {workdir}")
    return sorted(random.Random(0).sample(names, min(size, len(names))))


def _wilson(successes: int, total: int, z: float = 1.96) -> tuple[float, float]:
    """Return the 95 % Wilson score interval of a proportion."""
    if total == 0:
        return 0.0, 1.0
    p = successes / total
    centre = (p + z * z / (2 * total)) / (1 + z * z / total)
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / (1 + z * z / total)
    return centre - half, centre + half


def _caught_by_all_tests(workdir: Path, mutant: str, tests: list[str]) -> bool:
    """Run every test of the module against one mutant; True when one fails.

    mutmut runs for a mutant only the tests it saw call the mutated function, and a test that
    reaches it through a fixture another test built first (module scope) is not among them.
    """
    environment = {**os.environ, "MUTANT_UNDER_TEST": mutant, "PYTHONPATH": "src"}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-x", "-q", *PYTEST_ARGS, *tests],
        cwd=workdir / "mutants",
        env=environment,
        capture_output=True,
        check=False,
    )
    return done.returncode == 1  # 1: a test failed; anything else is not a verdict


def _function(mutant: str) -> str:
    """Name the function of a mutant.

    ``ltml.samplers.class_aware.xǁClassAwareSamplerǁ__iter____mutmut_3`` is a mutant of
    ``ltml.samplers.class_aware.ClassAwareSampler.__iter__``.
    """
    module, _, mangled = mutant.rsplit("__mutmut_", 1)[0].rpartition(".")
    if mangled.startswith("xǁ"):
        cls, method = mangled[2:].split("ǁ", 1)
        return f"{module}.{cls}.{method}"
    return f"{module}.{mangled.removeprefix('x_')}"


def _mutated_lines(workdir: Path, mutant: str) -> str:
    diff = _mutmut(workdir, "show", mutant).splitlines()
    return "\n".join(
        line[1:].strip() for line in diff if line.startswith("+") and not line.startswith("+++")
    )


def load_equivalents(path: Path = EQUIVALENTS) -> dict[tuple[str, str], str]:
    """Read the list of explained survivors as ``(function, mutated lines) -> kind``.

    An entry is a function's name on its own line, the mutated line(s) as mutmut shows them,
    each indented and starting with ``+``, then one indented line: ``why:`` for an equivalent
    mutant, or ``accelerator:`` for one that only an accelerator could tell apart (a CPU-only
    run cannot judge it, so it is counted apart); ``#`` starts a comment. The kind is ``"why"``
    or ``"accelerator"``.
    """
    entries: dict[tuple[str, str], str] = {}
    function, lines = "", []
    for raw in path.read_text().splitlines():
        text = raw.strip()
        if not text or text.startswith("#"):
            continue
        kind = text.partition(":")[0]
        if not raw[0].isspace():
            function, lines = text, []
        elif text.startswith("+"):
            lines.append(text[1:].strip())
        elif kind in ("why", "accelerator") and lines:
            entries[(function, "\n".join(lines))] = kind
            lines = []
        else:
            raise ValueError(f"{path}: cannot read the line {raw!r}")
    return entries


def mutate(
    name: str,
    max_children: int,
    equivalents: dict[tuple[str, str], str],
    resume: bool = False,
    sample: int | None = None,
) -> list[str]:
    """Run one module's mutants (or a sample); print its score; return its unexplained survivors."""
    target, tests = MODULES[name]
    resumed = resume and (ROOT / "build" / "mutation" / name / "mutants").is_dir()
    workdir = _prepare(name, target, tests, resume)
    print(f"{name}: mutating {target} against {', '.join(tests)} in {workdir} ...", flush=True)
    start = time.perf_counter()
    run = ("run", "--max-children", str(max_children))
    drawn = _draw_sample(workdir, sample) if sample else []
    _mutmut(workdir, *run, *drawn)
    status = _status(workdir)
    population = len(status)
    if drawn:
        status = {m: status[m] for m in drawn}
    # A mutant that makes the tests hang (timeout) is caught too.
    survivors = [m for m, s in status.items() if s not in ("killed", "timeout")]
    if resumed and survivors:
        # mutmut keeps a verdict once given: named, a survivor meets today's tests (new ones too)
        _mutmut(workdir, *run, *survivors)
        status = _status(workdir)
        survivors = [m for m, s in status.items() if s not in ("killed", "timeout")]
    explained = {"why": 0, "accelerator": 0}
    rechecked, unexplained, matched = 0, [], set()
    keys = {mutant: (_function(mutant), _mutated_lines(workdir, mutant)) for mutant in survivors}
    listed = {m for m in survivors if status[m] == "survived" and keys[m] in equivalents}
    for mutant in listed:
        explained[equivalents[keys[mutant]]] += 1
        matched.add(keys[mutant])
    # each re-run is one pytest process: as many at once as mutmut ran mutants
    to_recheck = [m for m in survivors if m not in listed]
    with ThreadPoolExecutor(max_children) as pool:
        caught = pool.map(lambda m: _caught_by_all_tests(workdir, m, tests), to_recheck)
        for mutant, was_caught in zip(to_recheck, caught, strict=True):
            if was_caught:
                rechecked += 1
            else:
                key = keys[mutant]
                unexplained.append(f"{mutant} ({status[mutant]}) {key[0]}:\n    + {key[1]}")
    killed = len(status) - len(survivors) + rechecked
    judged = len(status) - sum(explained.values())
    score = killed / max(judged, 1)
    took = time.perf_counter() - start
    print(
        f"{name:<20} {len(status):5d} mutants {killed:5d} killed ({rechecked} on the recheck) "
        f"{explained['why']:4d} equivalent {explained['accelerator']:3d} accelerator-only "
        f"{len(unexplained):4d} other   score {100 * score:5.1f}%   {took / 60:4.1f} min",
        flush=True,
    )
    if drawn:
        low, high = _wilson(killed, judged)
        print(
            f"{'':<20} a sample of {len(drawn)} of the {population} mutants: 95 % interval of "
            f"the score {100 * low:.1f}-{100 * high:.1f}%",
            flush=True,
        )
        return unexplained  # the list's other entries may match mutants outside the sample
    # An entry of this module that matched no survivor is stale: its code moved or changed, or
    # a test now kills its mutant. Either way the list must be mended, not silently kept.
    prefix = _module_prefix(target)
    for function, lines in sorted(set(equivalents) - matched):
        if function.startswith(prefix):
            unexplained.append(f"stale entry (no such survivor) {function}:\n    + {lines}")
    return unexplained


def _status(workdir: Path) -> dict[str, str]:
    """Each mutant's verdict: ``killed``, ``survived``, ``timeout``, ``no tests``, ..."""
    status: dict[str, str] = {}
    for line in _mutmut(workdir, "results", "--all", "true").splitlines():
        match = re.fullmatch(r"\s*(\S+): (.+)", line)
        if match:
            status[match[1]] = match[2]
    return status


def _module_prefix(target: str) -> str:
    """``src/ltml/losses/*`` -> ``ltml.losses.``; ``src/ltml/heads.py`` -> ``ltml.heads.``."""
    dotted = target.removeprefix("src/").removesuffix("*").removesuffix(".py").replace("/", ".")
    return dotted if dotted.endswith(".") else dotted + "."


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("modules", nargs="*", help=f"default: all of {', '.join(MODULES)}")
    parser.add_argument("--max-children", type=int, default=2, help="mutants run in parallel")
    parser.add_argument(
        "--sample", type=int, metavar="N", help="run N mutants drawn at random (seeded), not all"
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="go on with a run: its mutants without a verdict, then its survivors (today's tests)",
    )
    args = parser.parse_args()
    unknown = set(args.modules) - set(MODULES)
    if unknown:
        parser.error(f"unknown modules {sorted(unknown)}; choose from {', '.join(MODULES)}")
    # The tests find the shared label matrices relative to the repository; the copies are not.
    os.environ.setdefault("LTML_SHARED_DATA", str(ROOT.parent / "shared" / "data"))
    equivalents = load_equivalents()
    unexplained = []
    for name in args.modules or MODULES:
        unexplained += mutate(name, args.max_children, equivalents, args.resume, args.sample)
    if unexplained:
        print("\nSurvivors (kill them with a test, or list them as equivalent) and stale entries:")
        print("\n".join(unexplained))
        sys.exit(1)


if __name__ == "__main__":
    main()
