"""Per-call report documents: the contract JSON and an HTML page a supervisor reads.

The HTML is one self-contained file (inline CSS and SVG, no scripts, no external
resources).  Every piece of transcript or report text is HTML-escaped.
"""

from __future__ import annotations

import json
from html import escape
from typing import Mapping

from .transcript import Transcript


def report_json(report: Mapping) -> bytes:
    return json.dumps(report, ensure_ascii=False, indent=1, sort_keys=False).encode("utf-8")


def _t(seconds) -> str:
    if seconds is None:
        return ""
    s = float(seconds)
    return f"{int(s // 60)}:{s % 60:04.1f}"


def _e(value) -> str:
    return escape("" if value is None else str(value), quote=True)


_CSS = """
body{font:15px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;color:#1d2430;background:#f5f6f8}
main{max-width:1040px;margin:0 auto;padding:24px}
h1{font-size:22px;margin:0 0 4px} h2{font-size:17px;margin:28px 0 10px}
.meta{color:#5b6474;font-size:13px}
.card{background:#fff;border-radius:8px;padding:16px 18px;box-shadow:0 1px 2px rgba(0,0,0,.08);margin:12px 0}
.badge{display:inline-block;padding:2px 9px;border-radius:10px;font-size:13px;font-weight:600}
.escalation{background:#fde2e1;color:#9b1c1c}.handoff{background:#fdf0d5;color:#8a5a00}.standard{background:#e2f0e6;color:#1f6b3a}
table{border-collapse:collapse;width:100%} td,th{padding:6px 8px;border-bottom:1px solid #eceef2;text-align:left;vertical-align:top}
th{font-size:12px;text-transform:uppercase;color:#5b6474;letter-spacing:.03em}
.pass{color:#1f6b3a;font-weight:600}.fail{color:#b42318;font-weight:600}.na{color:#8a93a3}
.quote{color:#333;font-style:italic}.time{font-variant-numeric:tabular-nums;color:#5b6474;white-space:nowrap}
.try{color:#1d4ed8}.moment-strength{border-left:4px solid #2e9e5b}.moment-improvement{border-left:4px solid #e0802b}
.turn{display:flex;gap:12px;padding:6px 0;border-bottom:1px solid #f0f1f4}.who{width:84px;font-weight:600;flex:none}
.agent .who{color:#1d4ed8}.customer .who{color:#9b1c1c}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(160px,1fr));gap:10px}
.stat{background:#fff;border-radius:8px;padding:10px 12px;box-shadow:0 1px 2px rgba(0,0,0,.08)}
.stat b{display:block;font-size:19px}
"""


def _timeline_svg(transcript: Transcript | None, duration: float, width: int = 980) -> str:
    if transcript is None or duration <= 0:
        return ""
    rows = {"agent": 8, "customer": 34}
    colors = {"agent": "#3b6fe0", "customer": "#d9534f"}
    parts = [f'<svg id="timeline" role="img" aria-label="speaker timeline" width="100%" '
             f'viewBox="0 0 {width} 76" xmlns="http://www.w3.org/2000/svg">',
             '<text x="0" y="21" font-size="11">agent</text>',
             '<text x="0" y="47" font-size="11">customer</text>']
    x0, span = 64, width - 70
    for turn in transcript.turns:
        y = rows.get(turn.speaker)
        if y is None:
            continue
        x = x0 + span * turn.start / duration
        w = max(1.0, span * turn.duration / duration)
        parts.append(f'<rect x="{x:.1f}" y="{y}" width="{w:.1f}" height="18" rx="2" '
                     f'fill="{colors[turn.speaker]}"><title>{_e(turn.speaker)} {_t(turn.start)}'
                     f'–{_t(turn.end)}</title></rect>')
    for k in range(0, int(duration) + 1, max(10, int(duration // 8) // 10 * 10 or 10)):
        x = x0 + span * k / duration
        parts.append(f'<text x="{x:.1f}" y="70" font-size="10" fill="#5b6474">{_t(k)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _talk_ratio_svg(tr: Mapping) -> str:
    agent = tr.get("agent")
    lo, hi = (tr.get("expected") or [None, None])[:2]
    if agent is None or lo is None:
        return ""
    w = 400
    color = "#2e9e5b" if tr.get("within_expected") else "#e0802b"
    return (f'<svg id="talk-ratio" width="{w}" height="34" xmlns="http://www.w3.org/2000/svg" '
            f'role="img" aria-label="agent talk ratio against expected range">'
            f'<rect x="0" y="8" width="{w}" height="14" fill="#eceef2" rx="3"/>'
            f'<rect x="{lo * w:.1f}" y="8" width="{(hi - lo) * w:.1f}" height="14" fill="#cfe8d6"/>'
            f'<rect x="{agent * w - 2:.1f}" y="3" width="4" height="24" fill="{color}"/>'
            f'</svg>')


def render_html(report: Mapping, transcript: Transcript | None = None) -> str:
    tr = report.get("talk_ratio") or {}
    tone = report.get("tone") or {}
    call_type = report.get("call_type") or "unknown"
    duration = float(report.get("duration_s") or 0.0)
    out = ['<!doctype html><html lang="en"><head><meta charset="utf-8">',
           f'<meta name="viewport" content="width=device-width,initial-scale=1">'
           f'<title>Call {_e(report.get("call_id"))} — callcoach</title><style>{_CSS}</style>'
           '</head><body><main>']
    out.append(f'<h1>Call {_e(report.get("call_id"))} <span class="badge {_e(call_type)}" '
               f'id="call-type">{_e(call_type)}</span></h1>')
    models = report.get("models") or {}
    out.append(f'<div class="meta">{_e(_t(duration))} · agent {_e(report.get("agent_id") or "?")} · '
               f'team {_e(report.get("team") or "?")} · {_e(report.get("started_at") or "")}<br>'
               f'rules {_e(report.get("ruleset_version"))} · ASR {_e(models.get("asr"))} · '
               f'diarization {_e(models.get("diarization"))} · schema {_e(report.get("schema_version"))}</div>')
    if report.get("metadata_warning"):
        out.append(f'<div class="card" id="metadata-warning" style="border-left:4px solid #e0802b">'
                   f'Metadata: {_e(report["metadata_warning"])}</div>')

    agent = tr.get("agent")
    lo, hi = (tr.get("expected") or [None, None])[:2]
    out.append('<div class="grid" style="margin-top:14px">')
    out.append(f'<div class="stat">Call type confidence<b>{_e(_pct(report.get("call_type_confidence")))}</b></div>')
    out.append(f'<div class="stat">Agent talk ratio<b id="talk-ratio-value">{_e(_pct(agent))}</b>'
               f'expected {_e(_pct(lo))}–{_e(_pct(hi))}</div>')
    out.append(f'<div class="stat">Interruptions by agent<b>{_e(tone.get("interruptions"))}</b>'
               f'by customer {_e(tone.get("customer_interruptions"))}</div>')
    out.append(f'<div class="stat">Empathy / confidence<b>{_e(tone.get("empathy"))} / '
               f'{_e(tone.get("confidence"))}</b>jargon {_e(tone.get("jargon"))}</div>')
    out.append('</div>')

    out.append('<h2>Timeline</h2><div class="card">')
    out.append(_timeline_svg(transcript, duration))
    out.append(_talk_ratio_svg(tr))
    out.append('</div>')

    out.append('<h2>Process checks</h2><div class="card"><table id="checks"><tr><th>check</th>'
               '<th>result</th><th>evidence</th></tr>')
    for c in report.get("process_checks") or ():
        passed = c.get("passed")
        label, cls = ("passed", "pass") if passed is True else (
            ("failed", "fail") if passed is False else ("n/a", "na"))
        out.append(f'<tr><td>{_e(c.get("check"))}</td><td class="{cls}">{label}</td>'
                   f'<td>{_evidence(c.get("evidence"))}</td></tr>')
    out.append('</table></div>')

    out.append('<h2>Risks</h2><div class="card"><table id="risks">')
    risks = report.get("risks") or ()
    if not risks:
        out.append('<tr><td class="na">No risks found.</td></tr>')
    for r in risks:
        out.append(f'<tr><td class="fail">{_e(r.get("risk"))}</td><td>{_evidence(r.get("evidence"))}</td></tr>')
    out.append('</table></div>')

    out.append('<h2>Coaching moments</h2><div id="moments">')
    for m in report.get("moments") or ():
        out.append(f'<div class="card moment-{_e(m.get("kind"))}"><span class="time">{_e(_t(m.get("t")))}</span> '
                   f'<b>{_e(m.get("kind"))}</b> · {_e(m.get("area"))}<br>{_e(m.get("issue"))}'
                   f'<br><span class="try">{_e(m.get("suggestion"))}</span></div>')
    out.append('</div>')

    if transcript is not None:
        out.append('<h2>Transcript</h2><div class="card" id="transcript">')
        for turn in transcript.turns:
            out.append(f'<div class="turn {_e(turn.speaker)}"><span class="time">{_e(_t(turn.start))}</span>'
                       f'<span class="who">{_e(turn.speaker)}</span><span>{_e(turn.text)}</span></div>')
        out.append('</div>')
    out.append('</main></body></html>')
    return "".join(out)


def _pct(v) -> str:
    return "—" if v is None else f"{float(v) * 100:.0f}%"


def _evidence(ev) -> str:
    if not ev:
        return '<span class="na">—</span>'
    if isinstance(ev, Mapping):
        quote = ev.get("quote") or ev.get("concern") or ""
        who = ev.get("speaker") or ""
        return (f'<span class="time">{_e(_t(ev.get("t")))}</span> {_e(who)}: '
                f'<span class="quote">“{_e(quote)}”</span>')
    return _e(ev)
