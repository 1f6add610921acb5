"""Documentation that must stay true: every table column is documented."""

from pathlib import Path

from callcoach.contract import AREAS, CHECKS, RISKS
from callcoach.tables import CALL_COLUMNS, FAILURE_COLUMNS

DOC = (Path(__file__).resolve().parent.parent / "docs" / "tables.md").read_text()


def test_every_calls_and_failures_column_is_documented():
    generic = {f"check_{c}" for c in CHECKS} | {f"risk_{r}" for r in RISKS} | {
        f"moments_{a}" for a in AREAS}
    missing = [c for c in (*CALL_COLUMNS, *FAILURE_COLUMNS)
               if c not in generic and f"| {c} |" not in DOC]
    assert not missing, missing
    for pattern in ("check_NAME", "risk_NAME", "moments_AREA", "pass_rate_NAME"):
        assert pattern in DOC
