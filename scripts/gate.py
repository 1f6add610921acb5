#!/usr/bin/env python
"""Run the behaviour tests against a candidate engine before it is scored anywhere else.

    .venv/bin/python -m scripts.gate --rules /tmp/cand.yaml              # a re-tuned rule file
    .venv/bin/python -m scripts.gate --model /tmp/wt/pipelines/callcoach/coaching/model   # a retrained act model
    .venv/bin/python -m scripts.gate --rules F --model DIR --tests tests/test_coaching_checks.py

A candidate (a rule file from ``tune_rules --out``, an act model from ``train_acts`` in
another checkout) is first put through the tests that pin single-sentence and single-call
behaviour: the check and risk batteries, the act model's behaviour, the insights series,
the sample calls' labels.  The validation objective does not see these (on 2026-12-07 the
validation winner typed a "third time this month, fed up" caller standard), so a candidate
that fails one is not a candidate.  The tests run on a copy of this working tree (tracked
files and new ones git does not ignore, uncommitted edits included) with the candidate in place of
``pipelines/callcoach/rules/default.yaml`` and ``pipelines/callcoach/coaching/model/``; nothing here changes.
Exit status 0 when every test passes, 1 otherwise; the failing tests are printed.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

BATTERY = (
    "tests/test_coaching_checks.py", "tests/test_coaching_score.py", "tests/test_coaching_helpers.py",
    "tests/test_acts.py", "tests/test_act_training.py", "tests/test_concern_head.py",
    "tests/test_insights_detect.py", "tests/test_insights_eval.py", "tests/test_insights_tables.py",
    "tests/test_insights_helpers.py", "tests/test_sample_labels.py",
)
MODEL_FILES = ("acts.npz", "acts.json")


@dataclass(frozen=True)
class GateResult:
    passed: bool
    summary: str                   # pytest's last line ("121 passed in 17.1s")
    failed: tuple[str, ...]        # node ids of the failing tests

    def report(self) -> str:
        """The verdict and every failing test, as the scripts print it."""
        return "\n".join([f"gate: {'PASS' if self.passed else 'FAIL'}: {self.summary}"]
                         + [f"  failed: {f}" for f in self.failed])


def _copy_tree(dst: Path) -> None:
    files = subprocess.run(["git", "-C", str(ROOT), "ls-files", "-z", "--cached", "--others",
                            "--exclude-standard"], check=True,
                           capture_output=True).stdout.decode().split("\0")
    for f in filter(None, files):
        src = ROOT / f
        if not src.is_file():            # deleted in the working tree
            continue
        (dst / f).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dst / f)
    if (ROOT / ".venv").exists():
        (dst / ".venv").symlink_to(ROOT / ".venv")


def gate(rules: Path | None = None, model: Path | None = None,
         tests: tuple[str, ...] = BATTERY) -> GateResult:
    """Run ``tests`` with the candidate ``rules`` file and/or act ``model`` directory in
    place of the shipped ones, on a copy of the working tree."""
    if rules is not None and not Path(rules).is_file():
        raise FileNotFoundError(f"no rule file at {rules}")
    if model is not None and not all((Path(model) / n).is_file() for n in MODEL_FILES):
        raise FileNotFoundError(f"{model}: not an act model directory (needs {', '.join(MODEL_FILES)})")
    with tempfile.TemporaryDirectory(prefix="callcoach-gate-") as tmp:
        dst = Path(tmp) / "repo"
        _copy_tree(dst)
        if rules is not None:
            shutil.copyfile(rules, dst / "pipelines" / "callcoach" / "rules" / "default.yaml")
        if model is not None:
            for n in MODEL_FILES:
                shutil.copyfile(Path(model) / n, dst / "pipelines" / "callcoach" / "coaching" / "model" / n)
        # the copy's own package, for pytest and anything it starts (subprocesses, Ray
        # workers): the shared .venv's editable install points at this checkout instead
        env = {**os.environ, "PYANNOTE_METRICS_ENABLED": "false", "HF_HUB_OFFLINE": "1",
               "PYTHONPATH": os.pathsep.join([str(dst / "pipelines"), str(dst)])}
        r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rf",
                            *tests], cwd=dst, env=env, capture_output=True, text=True)
    lines = r.stdout.strip().splitlines()
    failed = tuple(line.split()[1] for line in lines if line.startswith("FAILED "))
    return GateResult(r.returncode == 0, lines[-1] if lines else r.stderr.strip()[-300:], failed)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rules", type=Path, help="candidate rule file (default: the shipped one)")
    ap.add_argument("--model", type=Path, help="candidate act model directory (default: the shipped one)")
    ap.add_argument("--tests", nargs="+", default=list(BATTERY), help="test files (default: the battery)")
    args = ap.parse_args(argv)
    res = gate(args.rules, args.model, tuple(args.tests))
    print(res.report())
    return 0 if res.passed else 1


if __name__ == "__main__":
    sys.exit(main())
