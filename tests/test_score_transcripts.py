"""callcoach score-transcripts: transcripts a contact centre already has, scored through the
same engine and outputs as recorded calls, on a real local Ray cluster.  No audio anywhere.
Dialogue written for this test."""

from __future__ import annotations

import json

import polars as pl
import pytest

from callcoach.cli import EXIT_OK, EXIT_PARTIAL, main
from callcoach.report import validate_report

pytestmark = pytest.mark.slow

ESCALATION = [
    ("agent", "Good afternoon, Brookfield Water, Tom speaking, how can I help?"),
    ("customer", "I've reported the leak outside my house three times now and still nobody has turned up."),
    ("customer", "I'm sick of being fobbed off, put your supervisor on the line."),
    ("agent", "I'm really sorry, that's not good enough and it's our fault the job was closed."),
    ("agent", "I've booked an emergency crew for you right now, they'll be there by four pm today."),
    ("agent", "I'll ring you tomorrow at nine to make sure it's fixed."),
]
ROUTINE = [
    ("agent", "hello you're through to Brookfield Water my name is Asha how can I help"),
    ("customer", "hi yeah I just need to give you a meter reading"),
    ("agent", "no problem what's the reading"),
    ("customer", "it's four five two one"),
    ("agent", "lovely that's in for you is there anything else"),
    ("customer", "no that's it thanks bye"),
]


def _jsonl(lines):
    t, out = 0.0, []
    for sp, text in lines:
        d = 0.3 * len(text.split())
        out.append(json.dumps({"role": sp, "start": round(t, 2), "end": round(t + d, 2), "text": text}))
        t += d + 0.5
    return "\n".join(out) + "\n"


def _csv(lines):
    t, rows = 0.0, ["channel,start,end,text"]
    for sp, text in lines:
        d = 0.3 * len(text.split())
        rows.append(f"{0 if sp == 'agent' else 1},{t:.2f},{t + d:.2f},\"{text}\"")
        t += d + 0.5
    return "\n".join(rows) + "\n"


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    src = tmp_path_factory.mktemp("transcripts")
    out = tmp_path_factory.mktemp("out")
    (src / "esc-1.jsonl").write_text(_jsonl(ESCALATION))
    (src / "esc-1.meta.json").write_text(json.dumps({"agent_id": "agt-7", "team": "leaks",
                                                     "started_at": "2026-11-30T10:00:00Z"}))
    (src / "routine-1.csv").write_text(_csv(ROUTINE))
    (src / "routine-1.meta.json").write_text(json.dumps({"agent_channel": 0, "team": "meters"}))
    (src / "broken.jsonl").write_text('{"role": "agent", "start": 0, "end": 1}\n')
    (src / "bad-meta.jsonl").write_text(_jsonl(ROUTINE))
    (src / "bad-meta.meta.json").write_text("{not json")
    code = main(["score-transcripts", "--input", str(src), "--output", str(out), "--quiet"])
    yield src, out, code
    import ray

    ray.shutdown()


def _report(out, call_id):
    (p,) = list((out / "reports").glob(f"*/{call_id}.json"))
    return json.loads(p.read_text())


def test_every_good_file_is_scored_and_the_broken_one_is_a_failure_row(run):
    _src, out, code = run
    assert code == EXIT_PARTIAL
    fails = pl.read_delta(str(out / "tables" / "failures"))
    assert fails["call_id"].to_list() == ["broken"]
    assert fails["stage"].to_list() == ["import"] and "text is missing" in fails["reason"][0]
    calls = pl.read_delta(str(out / "tables" / "calls"))
    assert sorted(calls["call_id"].to_list()) == ["bad-meta", "esc-1", "routine-1"]


def test_reports_follow_the_contract_and_name_the_source_and_models(run):
    _src, out, _code = run
    esc, routine = _report(out, "esc-1"), _report(out, "routine-1")
    for r in (esc, routine):
        validate_report(r)
        assert r["models"]["acts"].startswith("acts-")
    assert esc["models"]["asr"] == "imported:jsonl" and routine["models"]["asr"] == "imported:csv"
    assert esc["agent_id"] == "agt-7" and esc["team"] == "leaks"
    assert esc["call_type"] == "escalation" and routine["call_type"] == "standard"
    checks = {c["check"]: c["passed"] for c in esc["process_checks"]}
    assert checks["issue_acknowledged"] and checks["follow_up_scheduled"]
    assert routine["risks"] == []
    # the sidecar's agent_channel named channel 0 the agent
    tr = json.loads((out / "transcripts" / "routine-1.json").read_text())
    assert tr["turns"][0]["speaker"] == "agent" and tr["roles"]["method"] == "sidecar"


def test_a_bad_sidecar_costs_the_metadata_not_the_call(run):
    _src, out, _code = run
    tr = json.loads((out / "transcripts" / "bad-meta.json").read_text())
    assert "not valid JSON" in tr["metadata"]["metadata_warning"]


def test_rerun_imports_nothing_new_and_a_changed_file_alone(run, capsys):
    src, out, _code = run
    (src / "broken.jsonl").unlink()
    code = main(["score-transcripts", "--input", str(src), "--output", str(out)])
    summary = json.loads([ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("{")][-1])
    assert code == EXIT_OK and summary["imported"] == 0 and summary["unchanged"] == 3
    (src / "routine-1.csv").write_text(_csv(ROUTINE[:-1] + [("customer", "actually what's my balance")]))
    code = main(["score-transcripts", "--input", str(src), "--output", str(out)])
    summary = json.loads([ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("{")][-1])
    assert code == EXIT_OK and summary["imported"] == 1 and summary["unchanged"] == 2
