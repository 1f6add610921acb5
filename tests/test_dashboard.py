"""The supervisor's dashboard, as a supervisor opens it: rendered by headless Chromium.

Tables built from six hand-written reports (tests/test_tables.py) plus one call whose
agent, team and sidecar warning are planted markup, a broken commitment whose quote is
markup, and a failure whose input key is markup: all must show as text, never run.
Every link of the page (the latest page at the output root, and the run's own page two
folders down) must resolve to a file that exists.
"""

from __future__ import annotations

import re
from datetime import date, datetime, timezone
from pathlib import Path
from urllib.parse import unquote

import polars as pl
import pytest

from test_html_report import _run
from test_tables import FAILURES, make_reports

from callcoach.contract import CHECKS
from callcoach.dashboard import write_dashboards
from callcoach.insights.tables import COMMITMENT_COLUMNS, RECURRING_COLUMNS
from callcoach.storage import LocalStore
from callcoach.tables import call_row, calls_frame, failures_frame

HOSTILE = '<script>document.title="pwned"</script><img src=x onerror="document.title=\'pwned\'">'
RUN_ID = "20261205T120000Z-abc123"


def _tables():
    reports = make_reports()
    evil = dict(reports[0], call_id="c7", agent_id=HOSTILE, team=f"team {HOSTILE}",
                metadata_warning=f"sidecar ignored: {HOSTILE}")
    rows = [call_row(r, source_key=f"in/{r['call_id']}.wav") for r in [*reports, evil]]
    calls = calls_frame([r for r in rows if r["day"]])
    utc = timezone.utc
    commitments = pl.DataFrame([{
        "commitment_id": "c7#0", "call_id": "c7", "agent_id": HOSTILE, "team": "billing",
        "customer_id": "cust-1", "ticket_refs": [], "day": date(2024, 3, 4),
        "made_at_utc": datetime(2024, 3, 4, 9, tzinfo=utc), "t": 12.0,
        "quote": f"I'll call you back by 4 pm {HOSTILE}", "due": "2024-03-04T16:00:00+00:00",
        "due_utc": datetime(2024, 3, 4, 16, tzinfo=utc), "due_kind": "time", "who": "agent",
        "status": "broken", "kept_by_call_id": None, "kept_at_utc": None,
        "as_of_utc": datetime(2024, 3, 5, 10, tzinfo=utc)}], schema=COMMITMENT_COLUMNS)
    recurring = pl.DataFrame([{
        "day": date(2024, 3, 4), "week_start": date(2024, 3, 4), "iso_week": "2024-W10",
        "category": f"billing {HOSTILE}", "team": "billing", "calls": 3, "escalations": 2,
        "escalation_rate": 2 / 3, "recovered": 1, "recovered_share": 0.5, "prev_calls": 1,
        "prev_escalation_rate": 0.0, "prev_recovered_share": None, "calls_change": 2,
        "calls_change_pct": 2.0, "escalation_rate_change": 2 / 3, "recovered_share_change": None}],
        schema=RECURRING_COLUMNS)
    failures = failures_frame([*FAILURES, {"call_id": "bad3", "source_key": f"in/{HOSTILE}.wav",
                                           "stage": "key", "reason": "input key skipped"}])
    return {"calls": calls, "failures": failures, "commitments": commitments,
            "recurring_issues": recurring}


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    out = tmp_path_factory.mktemp("dash")
    store = LocalStore(out)
    tables = _tables()
    for r in tables["calls"].iter_rows(named=True):          # the reports the page links to
        store.write(f"reports/{r['ruleset_version']}/{r['call_id']}.html", b"<p>report</p>")
    store.write(f"runs/{RUN_ID}.json", b"{}")
    summary = {"run_id": RUN_ID, "ruleset_version": "rules-abc123", "scored": 7, "transcribed": 7,
               "rescored": 0, "skipped": 1}
    keys = write_dashboards(store, tables, summary)
    return out, keys, tables


def _dom(path: Path, cwd: Path) -> str:
    return _run(["--dump-dom", path.as_uri()], cwd).stdout


def test_pages_are_written_for_the_run_and_the_latest_state(site):
    out, keys, _ = site
    assert keys == [f"runs/{RUN_ID}/dashboard.html", "dashboard.html"]
    assert all((out / k).is_file() for k in keys)


@pytest.mark.parametrize("key", ["dashboard.html", f"runs/{RUN_ID}/dashboard.html"])
def test_every_section_renders_and_every_link_resolves(site, key):
    out, _, tables = site
    page = out / key
    dom = _dom(page, out)
    assert f"<title>callcoach dashboard — run {RUN_ID}</title>" in dom
    for element in ('id="escalation-rate"', 'id="check-pass-rates"', 'id="risks-over-time"',
                    'id="agents"', 'id="recurring-issues"', 'id="broken-commitments"',
                    'id="calls"', 'id="failures"'):
        assert element in dom, element
    assert dom.count("<svg") >= 4
    for check in CHECKS:
        assert check in dom
    hrefs = re.findall(r'href="([^"]+)"', dom)
    reports = [h for h in hrefs if "/reports/" in "/" + h]
    assert len(reports) >= tables["calls"].height            # every call links to its report
    for href in hrefs:
        assert "://" not in href and not href.startswith("/"), href   # relative, no network
        target = (page.parent / unquote(href)).resolve()
        assert target.is_file(), href
    assert 'src="http' not in dom and "<link" not in dom


def test_planted_markup_is_escaped_not_executed(site):
    out, _, _ = site
    dom = _dom(out / "dashboard.html", out)
    assert "pwned" not in dom.split("<title>")[1].split("</title>")[0]
    assert "<script" not in dom and "<img" not in dom
    assert dom.count("&lt;script&gt;") >= 5        # agent (x2), team, warning, quote, category, key


def test_screenshot_shows_a_page(site):
    out, _, _ = site
    shot = out / "dashboard.png"
    result = _run([f"--screenshot={shot}", "--window-size=1280,2400", (out / "dashboard.html").as_uri()], out)
    assert shot.is_file(), result.stderr[-2000:]
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(data) > 60_000          # a blank or error page compresses to a few KB
