"""The supervisor's dashboard: one static HTML page over the tables of a run.

``write_dashboards(store, tables, summary)`` writes ``runs/<run_id>/dashboard.html`` (the
state after that run, kept) and ``dashboard.html`` at the output root (the latest state),
beside the tables, on a local folder or S3 alike.  ``render(tables, summary, root)`` is the
page itself: inline CSS and inline SVG charts, no script, no network, every value from the
data HTML-escaped; calls link to their reports with relative links
(``<root>reports/<ruleset_version>/<call_id>.html``).

Sections: escalation rate per team and day, pass rate of each process check, risks over
time, agents side by side, recurring issues, broken commitments, calls (linked to their
reports) and failures.
"""

from __future__ import annotations

from html import escape
from typing import Any, Mapping, Sequence
from urllib.parse import quote

import polars as pl

from .contract import CHECKS, RISKS

MAX_CALLS = 500        # the newest calls listed (every call is in the tables)
MAX_ROWS = 50          # rows of the recurring-issues and broken-commitments lists
PALETTE = ("#3b6fe0", "#d9534f", "#2e9e5b", "#e0802b", "#8e5bd9", "#1aa3a3", "#b8860b",
           "#c2185b", "#5d6d7e", "#6b8e23", "#ff7f50", "#4682b4", "#9acd32", "#a0522d")

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;color:#1d2430;background:#f5f6f8}
main{max-width:1180px;margin:0 auto;padding:22px}
h1{font-size:22px;margin:0 0 4px} h2{font-size:17px;margin:26px 0 8px}
.meta{color:#5b6474;font-size:13px}
.card{background:#fff;border-radius:8px;padding:14px 16px;box-shadow:0 1px 2px rgba(0,0,0,.08);margin:10px 0;overflow-x:auto}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(150px,1fr));gap:10px;margin-top:12px}
.stat{background:#fff;border-radius:8px;padding:10px 12px;box-shadow:0 1px 2px rgba(0,0,0,.08)}
.stat b{display:block;font-size:20px}
table{border-collapse:collapse;width:100%} td,th{padding:5px 8px;border-bottom:1px solid #eceef2;text-align:left;vertical-align:top}
th{font-size:12px;text-transform:uppercase;color:#5b6474;letter-spacing:.03em}
td.num{text-align:right;font-variant-numeric:tabular-nums}
.warn{color:#8a5a00} .bad{color:#b42318;font-weight:600} .none{color:#8a93a3}
.legend span{display:inline-block;margin-right:12px;font-size:12px}
.legend i{display:inline-block;width:10px;height:10px;margin-right:4px;border-radius:2px}
"""


def _e(value: Any) -> str:
    return escape("" if value is None else str(value), quote=True)


def _pct(v: Any) -> str:
    return "–" if v is None else f"{100 * float(v):.0f}%"


def _color(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


def report_href(root: str, ruleset_version: Any, call_id: Any) -> str:
    """Relative link from a page ``root`` levels deep to a call's HTML report."""
    return f"{root}reports/{quote(str(ruleset_version), safe='')}/{quote(str(call_id), safe='')}.html"


# -- charts (inline SVG) -------------------------------------------------------------------

def _heatmap(rows: Sequence[str], cols: Sequence[str], values: Mapping[tuple[str, str], tuple],
             svg_id: str, label: str) -> str:
    """Rows x columns of cells shaded by a rate (0..1), the rate and count written in."""
    if not rows or not cols:
        return '<p class="none">No data.</p>'
    cw, ch, left, top = 74, 26, 150, 34
    w, h = left + cw * len(cols) + 10, top + ch * len(rows) + 6
    out = [f'<svg id="{svg_id}" role="img" aria-label="{_e(label)}" width="{w}" height="{h}" '
           f'viewBox="0 0 {w} {h}" xmlns="http://www.w3.org/2000/svg">']
    for j, c in enumerate(cols):
        out.append(f'<text x="{left + cw * j + cw / 2:.0f}" y="20" font-size="11" '
                   f'text-anchor="middle" fill="#5b6474">{_e(c)}</text>')
    for i, r in enumerate(rows):
        y = top + ch * i
        short = r if len(r) <= 22 else r[:21] + "…"
        out.append(f'<text x="{left - 8}" y="{y + 17}" font-size="12" text-anchor="end">{_e(short)}'
                   f'<title>{_e(r)}</title></text>')
        for j, c in enumerate(cols):
            x = left + cw * j
            rate, n = values.get((r, c), (None, 0))
            if rate is None:
                out.append(f'<rect x="{x}" y="{y}" width="{cw - 3}" height="{ch - 3}" fill="#f0f1f4"/>')
                continue
            red = int(255 - 80 * rate)
            fill = f"rgb({red},{int(235 - 170 * rate)},{int(225 - 170 * rate)})"
            out.append(f'<rect x="{x}" y="{y}" width="{cw - 3}" height="{ch - 3}" rx="2" fill="{fill}">'
                       f'<title>{_e(r)} {_e(c)}: {_pct(rate)} of {n} calls</title></rect>'
                       f'<text x="{x + (cw - 3) / 2:.0f}" y="{y + 16}" font-size="11" '
                       f'text-anchor="middle">{_pct(rate)} ({n})</text>')
    out.append("</svg>")
    return "".join(out)


def _hbars(items: Sequence[tuple[str, float | None, int]], svg_id: str, label: str) -> str:
    """Horizontal bars of rates (0..1): (label, rate, count)."""
    if not items:
        return '<p class="none">No data.</p>'
    left, bw, bh = 230, 420, 22
    h = bh * len(items) + 8
    out = [f'<svg id="{svg_id}" role="img" aria-label="{_e(label)}" width="{left + bw + 120}" '
           f'height="{h}" xmlns="http://www.w3.org/2000/svg">']
    for i, (name, rate, n) in enumerate(items):
        y = 4 + bh * i
        out.append(f'<text x="{left - 8}" y="{y + 14}" font-size="12" text-anchor="end">{_e(name)}</text>'
                   f'<rect x="{left}" y="{y + 2}" width="{bw}" height="{bh - 7}" fill="#eceef2" rx="2"/>')
        if rate is not None:
            color = "#2e9e5b" if rate >= 0.8 else "#e0802b" if rate >= 0.5 else "#d9534f"
            out.append(f'<rect x="{left}" y="{y + 2}" width="{bw * rate:.1f}" height="{bh - 7}" '
                       f'fill="{color}" rx="2"><title>{_e(name)}: {_pct(rate)} of {n}</title></rect>')
        out.append(f'<text x="{left + bw + 8}" y="{y + 14}" font-size="12">'
                   f'{_pct(rate)} <tspan fill="#8a93a3">of {n}</tspan></text>')
    out.append("</svg>")
    return "".join(out)


def _stacked(days: Sequence[str], series: Sequence[str], counts: Mapping[tuple[str, str], int],
             svg_id: str, label: str) -> str:
    """Stacked columns per day: how many calls had each risk."""
    totals = [sum(counts.get((d, s), 0) for s in series) for d in days]
    if not days or not any(totals):
        return '<p class="none">No risks in the data.</p>'
    left, top, ph, cw = 40, 10, 200, max(18, min(60, 900 // max(1, len(days))))
    peak = max(totals)
    w, h = left + cw * len(days) + 10, top + ph + 40
    out = [f'<svg id="{svg_id}" role="img" aria-label="{_e(label)}" width="{w}" height="{h}" '
           f'viewBox="0 0 {w} {h}" xmlns="http://www.w3.org/2000/svg">',
           f'<line x1="{left}" y1="{top + ph}" x2="{w}" y2="{top + ph}" stroke="#c9ced6"/>',
           f'<text x="{left - 6}" y="{top + 10}" font-size="11" text-anchor="end">{peak}</text>',
           f'<text x="{left - 6}" y="{top + ph}" font-size="11" text-anchor="end">0</text>']
    for j, d in enumerate(days):
        x, y = left + cw * j + 3, top + ph
        for k, s in enumerate(series):
            n = counts.get((d, s), 0)
            if not n:
                continue
            hh = ph * n / peak
            y -= hh
            out.append(f'<rect x="{x}" y="{y:.1f}" width="{cw - 6}" height="{hh:.1f}" fill="{_color(k)}">'
                       f'<title>{_e(d)} {_e(s)}: {n}</title></rect>')
        out.append(f'<text x="{x + (cw - 6) / 2:.0f}" y="{top + ph + 14}" font-size="10" '
                   f'text-anchor="middle" fill="#5b6474">{_e(d[5:])}</text>')
    out.append("</svg>")
    legend = "".join(f'<span><i style="background:{_color(k)}"></i>{_e(s)}</span>'
                     for k, s in enumerate(series))
    return "".join(out) + f'<div class="legend">{legend}</div>'


def _bar_cell(rate: float | None, color: str = "#3b6fe0", width: int = 90) -> str:
    if rate is None:
        return '<span class="none">–</span>'
    return (f'<svg width="{width}" height="12" xmlns="http://www.w3.org/2000/svg">'
            f'<rect width="{width}" height="12" fill="#eceef2" rx="2"/>'
            f'<rect width="{width * max(0.0, min(1.0, rate)):.1f}" height="12" fill="{color}" rx="2"/>'
            f'</svg> {_pct(rate)}')


# -- sections ------------------------------------------------------------------------------

def _label(v: Any) -> str:
    return "(none)" if v is None or v == "" else str(v)


def _escalation_by_team_day(calls: pl.DataFrame) -> str:
    if calls.is_empty():
        return _heatmap([], [], {}, "escalation-rate", "")
    g = (calls.with_columns(pl.col("team").fill_null("(none)"), pl.col("day").cast(pl.String))
         .group_by("team", "day")
         .agg(pl.len().alias("n"), pl.col("call_type").is_in(["escalation", "handoff"]).mean().alias("rate")))
    days = sorted(g["day"].unique().to_list())[-14:]
    teams = sorted(g["team"].unique().to_list())
    values = {(r["team"], r["day"]): (r["rate"], r["n"]) for r in g.iter_rows(named=True)}
    return _heatmap(teams, days, values, "escalation-rate",
                    "escalation rate per team and day")


def _check_pass_rates(calls: pl.DataFrame) -> str:
    items = []
    for c in CHECKS:
        col = calls[f"check_{c}"] if f"check_{c}" in calls.columns else pl.Series([], dtype=pl.Boolean)
        n = col.drop_nulls().len()
        items.append((c, (col.drop_nulls().cast(pl.Float64).mean() if n else None), n))
    return _hbars(items, "check-pass-rates", "pass rate of each process check")


def _risks_over_time(calls: pl.DataFrame) -> str:
    if calls.is_empty():
        return _stacked([], [], {}, "risks-over-time", "")
    days = sorted({str(d) for d in calls["day"].to_list() if d is not None})[-31:]
    counts = {}
    present = []
    for r in RISKS:
        col = f"risk_{r}"
        per = (calls.filter(pl.col(col).fill_null(False)).group_by(pl.col("day").cast(pl.String))
               .agg(pl.len().alias("n")))
        if per.height:
            present.append(r)
        for row in per.iter_rows(named=True):
            counts[(row["day"], r)] = row["n"]
    return _stacked(days, present, counts, "risks-over-time", "calls with each risk per day")


def _agents(calls: pl.DataFrame) -> str:
    if calls.is_empty():
        return '<p class="none">No calls.</p>'
    checks = [pl.col(f"check_{c}") for c in CHECKS]
    g = (calls.with_columns(pl.col("agent_id").fill_null("(none)"), pl.col("team").fill_null("(none)"),
                            pl.concat_list([c.cast(pl.Float64) for c in checks]).list.drop_nulls().alias("_checks"))
         .group_by("agent_id", "team")
         .agg(pl.len().alias("calls"),
              pl.col("call_type").is_in(["escalation", "handoff"]).mean().alias("escalation_rate"),
              pl.col("talk_ratio_agent").mean().alias("talk"),
              pl.col("talk_ratio_within_expected").cast(pl.Float64).mean().alias("within"),
              pl.col("_checks").explode().mean().alias("pass_rate"),
              (pl.col("risks").sum() / pl.len()).alias("risks_per_call"),
              pl.col("interruptions").mean().alias("interruptions"))
         .sort("team", "agent_id"))
    out = ['<table id="agents"><tr><th>agent</th><th>team</th><th>calls</th><th>escalation rate</th>'
           '<th>checks passed</th><th>talk ratio in range</th><th>agent talk ratio</th>'
           '<th>risks / call</th><th>interruptions / call</th></tr>']
    for r in g.iter_rows(named=True):
        out.append(f'<tr><td>{_e(r["agent_id"])}</td><td>{_e(r["team"])}</td>'
                   f'<td class="num">{r["calls"]}</td>'
                   f'<td>{_bar_cell(r["escalation_rate"], "#d9534f")}</td>'
                   f'<td>{_bar_cell(r["pass_rate"], "#2e9e5b")}</td>'
                   f'<td>{_bar_cell(r["within"], "#3b6fe0")}</td>'
                   f'<td class="num">{_pct(r["talk"])}</td>'
                   f'<td class="num">{r["risks_per_call"]:.2f}</td>'
                   f'<td class="num">{(r["interruptions"] or 0):.1f}</td></tr>')
    out.append("</table>")
    return "".join(out)


def _recurring(recurring: pl.DataFrame | None) -> str:
    if recurring is None or recurring.is_empty():
        return '<p class="none">No recurring issues yet.</p>'
    rows = recurring.sort(["week_start", "calls"], descending=[True, True]).head(MAX_ROWS)
    out = ['<table id="recurring-issues"><tr><th>week</th><th>category</th><th>team</th><th>calls</th>'
           '<th>change</th><th>escalation rate</th><th>recovered</th></tr>']
    for r in rows.iter_rows(named=True):
        change = r["calls_change"]
        out.append(f'<tr><td>{_e(r["iso_week"])}</td><td>{_e(_label(r["category"]))}</td>'
                   f'<td>{_e(_label(r["team"]))}</td><td class="num">{r["calls"]}</td>'
                   f'<td class="num">{"" if change is None else f"{change:+d}"}</td>'
                   f'<td>{_bar_cell(r["escalation_rate"], "#d9534f")}</td>'
                   f'<td>{_bar_cell(r["recovered_share"], "#2e9e5b")}</td></tr>')
    out.append("</table>")
    return "".join(out)


def _broken(commitments: pl.DataFrame | None, links: Mapping[str, str], root: str) -> str:
    if commitments is None or commitments.is_empty():
        return '<p class="none">No commitments recorded.</p>'
    broken = commitments.filter(pl.col("status") == "broken").sort("due_utc", descending=True)
    counts = commitments.group_by("status").len()
    summary = ", ".join(f'{n} {_e(s)}' for s, n in sorted(counts.iter_rows()))
    if broken.is_empty():
        return f'<p>No broken commitments ({summary}).</p>'
    out = [f'<p class="meta">{summary}</p><table id="broken-commitments"><tr><th>due</th><th>agent</th>'
           '<th>team</th><th>promise</th><th>call</th></tr>']
    for r in broken.head(MAX_ROWS).iter_rows(named=True):
        cid = r["call_id"]
        href = links.get(cid)
        call = f'<a href="{_e(href)}">{_e(cid)}</a>' if href else _e(cid)
        out.append(f'<tr><td>{_e(r["due"])}</td><td>{_e(r["agent_id"])}</td><td>{_e(r["team"])}</td>'
                   f'<td>“{_e(r["quote"])}”</td><td>{call}</td></tr>')
    out.append("</table>")
    return "".join(out)


def _calls_list(calls: pl.DataFrame, links: Mapping[str, str]) -> str:
    if calls.is_empty():
        return '<p class="none">No scored calls.</p>'
    rows = calls.sort(["started_at", "call_id"], descending=[True, False], nulls_last=True).head(MAX_CALLS)
    note = (f'<p class="meta">The newest {MAX_CALLS} of {calls.height} calls.</p>'
            if calls.height > MAX_CALLS else "")
    out = [note, '<table id="calls"><tr><th>call</th><th>day</th><th>agent</th><th>team</th>'
           '<th>type</th><th>talk ratio</th><th>failed checks</th><th>risks</th><th>note</th></tr>']
    failed_cols = [f"check_{c}" for c in CHECKS if f"check_{c}" in calls.columns]
    for r in rows.iter_rows(named=True):
        failed = sum(1 for c in failed_cols if r[c] is False)
        note = ""
        if r.get("metadata_warning"):
            note = f'<span class="warn">{_e(r["metadata_warning"])}</span>'
        elif r.get("day_source") and r["day_source"] != "sidecar":
            note = f'<span class="meta">day from {_e(r["day_source"])}</span>'
        out.append(f'<tr><td><a class="report" href="{_e(links[r["call_id"]])}">{_e(r["call_id"])}</a></td>'
                   f'<td>{_e(r["day"])}</td><td>{_e(r["agent_id"])}</td><td>{_e(r["team"])}</td>'
                   f'<td>{_e(r["call_type"])}</td><td class="num">{_pct(r["talk_ratio_agent"])}</td>'
                   f'<td class="num{" bad" if failed else ""}">{failed}</td>'
                   f'<td class="num">{r["risks"]}</td><td>{note}</td></tr>')
    out.append("</table>")
    return "".join(out)


def _failures(failures: pl.DataFrame | None) -> str:
    if failures is None or failures.is_empty():
        return '<p class="none">None.</p>'
    out = ['<table id="failures"><tr><th>call</th><th>input</th><th>stage</th><th>reason</th></tr>']
    for r in failures.head(MAX_ROWS * 4).iter_rows(named=True):
        out.append(f'<tr><td>{_e(r["call_id"])}</td><td>{_e(r["source_key"])}</td>'
                   f'<td>{_e(r["stage"])}</td><td>{_e(r["reason"])}</td></tr>')
    out.append("</table>")
    return "".join(out)


def render(tables: Mapping[str, pl.DataFrame], summary: Mapping[str, Any], root: str = "") -> str:
    """The dashboard page; ``root`` is the relative path from the page to the output root."""
    calls = tables["calls"]
    links = {r["call_id"]: report_href(root, r["ruleset_version"], r["call_id"])
             for r in calls.select("call_id", "ruleset_version").iter_rows(named=True)}
    n = calls.height
    esc = calls["call_type"].is_in(["escalation", "handoff"]).mean() if n else None
    hours = (calls["duration_s"].sum() or 0) / 3600 if n else 0.0
    days = calls["day"].drop_nulls()
    span = f"{days.min()} to {days.max()}" if days.len() else "no days"
    failures = tables.get("failures")
    out = ['<!doctype html><html lang="en"><head><meta charset="utf-8">'
           '<meta name="viewport" content="width=device-width,initial-scale=1">'
           f'<title>callcoach dashboard — run {_e(summary.get("run_id"))}</title>'
           f'<style>{_CSS}</style></head><body><main>',
           f'<h1>Coaching dashboard</h1><div class="meta" id="run">run {_e(summary.get("run_id"))} · '
           f'rules {_e(summary.get("ruleset_version"))} · {_e(span)} · '
           f'<a href="{_e(root)}runs/{quote(str(summary.get("run_id", "")), safe="")}.json">run summary</a></div>',
           '<div class="grid">',
           f'<div class="stat">Calls scored<b>{n}</b>{hours:.1f} h of audio</div>',
           f'<div class="stat">Escalation rate<b>{_pct(esc)}</b>escalation + handoff</div>',
           f'<div class="stat">This run<b>{_e(summary.get("scored", 0))}</b>'
           f'{_e(summary.get("transcribed", 0))} transcribed, {_e(summary.get("rescored", 0))} re-scored</div>',
           f'<div class="stat">Failed / skipped<b>{0 if failures is None else failures.height}</b>'
           f'{_e(summary.get("skipped", 0))} input keys not read</div>',
           '</div>',
           '<h2>Escalation rate per team and day</h2><div class="card">',
           _escalation_by_team_day(calls), '</div>',
           '<h2>Process checks: pass rate</h2><div class="card">',
           '<p class="meta">Among calls where the check applies.</p>', _check_pass_rates(calls), '</div>',
           '<h2>Risks over time</h2><div class="card">', _risks_over_time(calls), '</div>',
           '<h2>Agents side by side</h2><div class="card">', _agents(calls), '</div>',
           '<h2>Recurring issues</h2><div class="card">', _recurring(tables.get("recurring_issues")), '</div>',
           '<h2>Broken commitments</h2><div class="card">',
           _broken(tables.get("commitments"), links, root), '</div>',
           '<h2>Calls</h2><div class="card">', _calls_list(calls, links), '</div>',
           '<h2>Failures</h2><div class="card">', _failures(failures), '</div>',
           '</main></body></html>']
    return "".join(out)


def write_dashboards(store, tables: Mapping[str, pl.DataFrame], summary: Mapping[str, Any]) -> list[str]:
    """Write the run's page and the latest page; returns their keys."""
    run_id = str(summary.get("run_id") or "run")
    keys = [f"runs/{run_id}/dashboard.html", "dashboard.html"]
    for key, root in zip(keys, ("../../", "")):
        store.write(key, render(tables, summary, root).encode("utf-8"), "text/html; charset=utf-8")
    return keys
