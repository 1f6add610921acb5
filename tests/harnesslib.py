"""scripts/crash_harness.py as a module, for the tests that use its archive builder, its
S3/local targets and its output comparison (one copy of the module per test session)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

HARNESS = Path(__file__).resolve().parent.parent / "scripts" / "crash_harness.py"


def crash_harness():
    if "crash_harness" not in sys.modules:
        spec = importlib.util.spec_from_file_location("crash_harness", HARNESS)
        module = importlib.util.module_from_spec(spec)
        sys.modules["crash_harness"] = module
        spec.loader.exec_module(module)
    return sys.modules["crash_harness"]
