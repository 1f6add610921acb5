"""What a run decides to do with each input, from the ledger: pure planning, no Ray."""

from __future__ import annotations

import json

from callcoach.planning import _disambiguate, call_ids, plan, speech_fingerprint
from callcoach.ledger import Entry, commit, entry_for, load, record
from callcoach.speech.stage import SpeechConfig
from callcoach.storage import LocalStore

FP = "fp-1"
RULES = "2026.11.0-aaaaaaaa"


def _call(call_id, key=None, etag="e1", size=10):
    return {"call_id": call_id, "key": key or f"{call_id}.wav", "etag": etag, "size": size}


def _entry(call_id, **kw):
    base = dict(call_id=call_id, source_key=f"{call_id}.wav", etag="e1", size=10,
                speech_fingerprint=FP, ruleset_version=RULES)
    base.update(kw)
    return Entry(**base)


def test_plan_sorts_calls_into_transcribe_rescore_and_unchanged():
    ledger = {
        "same": _entry("same"),
        "new-rules": _entry("new-rules", ruleset_version="2026.10.0-bbbbbbbb"),
        "changed-audio": _entry("changed-audio", etag="old"),
        "new-model": _entry("new-model", speech_fingerprint="fp-0"),
        "bad-bytes": _entry("bad-bytes", status="failed", stage="decode", reason="empty file"),
        "crashed": _entry("crashed", status="failed", stage="speech", reason="OOM"),
    }
    calls = [_call(c) for c in ledger] + [_call("brand-new")]
    p = plan(calls, ledger, FP, RULES)
    assert sorted(c["call_id"] for c in p.transcribe) == ["brand-new", "changed-audio", "crashed",
                                                          "new-model"]
    assert [c["call_id"] for c in p.rescore] == ["new-rules"]
    assert p.rescore[0]["entry"]["speech_fingerprint"] == FP
    # an unchanged file that failed to decode is not re-read every night
    assert sorted(c["call_id"] for c in p.unchanged) == ["bad-bytes", "same"]
    forced = plan(calls, ledger, FP, RULES, force=True)
    assert len(forced.transcribe) == len(calls)
    # new issue categories re-score (no ASR) every call scored with the old ones
    by_cats = plan([_call("same")], {"same": _entry("same", categories_version="c1")}, FP, RULES,
                   categories_version="c2")
    assert [c["call_id"] for c in by_cats.rescore] == ["same"] and not by_cats.transcribe


def test_plan_of_stored_transcripts_rescores_and_never_transcribes():
    """callcoach rescore plans through plan() too: every stored transcript whose entry was
    not scored with these versions is re-scored (failed, unknown or new model alike)."""
    ledger = {
        "same": _entry("same", categories_version="c1", acts_model="a1"),
        "new-rules": _entry("new-rules", ruleset_version="2026.10.0-bbbbbbbb"),
        "new-model": _entry("new-model", speech_fingerprint="fp-0", categories_version="c1",
                            acts_model="a1"),
        "bad-bytes": _entry("bad-bytes", status="failed", stage="decode", reason="empty file"),
    }
    calls = [_call(c) for c in [*ledger, "no-entry"]]
    p = plan(calls, ledger, FP, RULES, categories_version="c1", acts_model="a1", stored=True)
    assert not p.transcribe
    assert [c["call_id"] for c in p.unchanged] == ["same", "new-model"]
    assert [c["call_id"] for c in p.rescore] == ["new-rules", "bad-bytes", "no-entry"]
    forced = plan(calls, ledger, FP, RULES, True, "c1", "a1", stored=True)
    assert len(forced.rescore) == len(calls) and not forced.unchanged


def test_call_ids_are_file_stems_made_safe_and_unique():
    ids = call_ids(["a/0001.wav", "b/0001.wav", "c/x y.flac", "d/ok-1.mp3", "e/../../etc.wav"])
    assert ids["d/ok-1.mp3"] == "ok-1"
    assert ids["a/0001.wav"] != ids["b/0001.wav"]
    assert all(i.startswith("0001-") for i in (ids["a/0001.wav"], ids["b/0001.wav"]))
    assert ids["c/x y.flac"].startswith("x_y-")
    assert all("/" not in i and ".." not in i for i in ids.values())


def test_a_name_reused_in_a_later_folder_does_not_overwrite_the_earlier_call():
    ledger = {"0001": _entry("0001", source_key="2026-11-20/0001.wav")}
    calls = _disambiguate([_call("0001", key="2026-11-21/0001.wav"),
                           _call("0002", key="2026-11-21/0002.wav")], ledger)
    assert calls[0]["call_id"].startswith("0001-") and calls[1]["call_id"] == "0002"
    again = _disambiguate([_call("0001", key="2026-11-21/0001.wav")], ledger)
    assert again[0]["call_id"] == calls[0]["call_id"]          # stable from run to run
    assert _disambiguate([_call("0001", key="2026-11-20/0001.wav")], ledger)[0]["call_id"] == "0001"


def test_ledger_survives_a_crash_between_entries_and_snapshot(tmp_path):
    store = LocalStore(tmp_path)
    commit(store, {"a": _entry("a")})
    record(store, _entry("b"), {"call_id": "b", "call_type": "standard"})   # then the run dies
    record(store, _entry("c"), {"call_id": "c"}, {"call_id": "c", "category": "billing"})
    ledger, pending, pending_insights = load(store)
    assert set(ledger) == {"a", "b", "c"}
    assert pending["b"] == {"call_id": "b", "call_type": "standard"}
    assert pending_insights == {"c": {"call_id": "c", "category": "billing"}}
    commit(store, ledger)
    assert list(store.list("state/entries")) == []
    assert set(load(store)[0]) == {"a", "b", "c"}


def test_one_builder_makes_every_ledger_entry():
    """Failed calls record the input as listed; a scored call records what its transcript
    was made from (the call's own values fill what the transcript does not say)."""
    row = {"call_id": "c1", "key": "in/c1.wav", "etag": "e1", "size": 10, "stage": "decode"}
    failed = entry_for(row, "run-1", status="failed", stage="decode", reason="empty file")
    assert failed == Entry(call_id="c1", source_key="in/c1.wav", etag="e1", size=10,
                           status="failed", stage="decode", reason="empty file", run_id="run-1")
    scored = entry_for(row, "run-2", made_from={"source_key": "old/c1.wav", "sha256": "abc"},
                       speech_fingerprint=FP, ruleset_version=RULES)
    assert scored == Entry(call_id="c1", source_key="old/c1.wav", etag="e1", size=10,
                           audio_sha256="abc", speech_fingerprint=FP, ruleset_version=RULES,
                           status="scored", run_id="run-2")


def test_speech_fingerprint_ignores_speed_settings_but_not_models():
    base = SpeechConfig()
    assert speech_fingerprint(base) == speech_fingerprint(
        SpeechConfig(device="cuda", compute_type="float16", batch_size=32))
    assert speech_fingerprint(base) != speech_fingerprint(SpeechConfig(language=None))
    assert speech_fingerprint(base) != speech_fingerprint(SpeechConfig(diarization="embedded"))


def test_json_logs_are_one_object_per_line(capsys):
    import logging

    from callcoach.cli import JsonFormatter

    record = logging.LogRecord("callcoach.progress", logging.INFO, __file__, 1, "call done", (), None)
    record.call_id, record.done, record.total = "c1", 3, 10
    doc = json.loads(JsonFormatter().format(record))
    assert doc["msg"] == "call done" and doc["call_id"] == "c1" and (doc["done"], doc["total"]) == (3, 10)
    assert doc["level"] == "INFO" and doc["logger"] == "callcoach.progress"


# -- the Score stage on a stored transcript whose features are stale -----------------------

def test_stale_stored_features_are_computed_once_and_stored(tmp_path, monkeypatch):
    """A transcript stored under an older features version: the Score stage computes the
    sentence features once for the scorer and the insights alike, and stores them, so the
    next rescore of the call does not run the sentence encoder again."""
    import dataclasses
    from pathlib import Path

    import callcoach.coaching.features as cf
    from callcoach.stages.decode import ReadTranscript
    from callcoach.stages.rows import _row
    from callcoach.stages.score import Score
    from callcoach.transcript import Transcript, Turn

    d = json.loads((Path(__file__).resolve().parent.parent / "samples" / "calls"
                    / "sample-01-escalation.truth.json").read_text())
    tr = Transcript("c1", d["duration_s"],
                    tuple(Turn(t["speaker"], t["start"], t["end"], t["text"]) for t in d["turns"]),
                    models={"asr": "truth", "diarization": "truth"}, metadata=d["metadata"])
    from callcoach.pii import redact_transcript

    tr, _ = redact_transcript(tr)            # stored transcripts are redacted already
    fresh = cf.turn_features(tr)
    stale = dict(fresh, version="cf0-old")
    store = LocalStore(str(tmp_path))
    store.write("transcripts/c1.json", dataclasses.replace(tr, features=stale).to_json())

    import callcoach.coaching.score as cs
    import callcoach.insights.detect as idet

    encoded = []
    real = cf.features_batch
    spy = lambda trs, *a, **k: encoded.append(len(trs)) or real(trs, *a, **k)   # noqa: E731
    for module in (cf, cs, idet):          # every place that may run the encoder
        monkeypatch.setattr(module, "features_batch", spy)
    item = {"call_id": "c1", "key": "c1.wav", "etag": "e", "size": 1}
    score = Score(str(tmp_path), None, "fp", "run-1")
    out = score.one(ReadTranscript(str(tmp_path))(item))
    assert out["status"] == "ok", out["error"]
    assert sum(encoded) == 1                         # once, not once per consumer
    stored = json.loads(store.read("transcripts/c1.json"))
    assert stored["features"]["version"] == cf.FEATURES_VERSION
    assert cf.features_valid(Transcript.from_dict(stored), stored["features"])

    encoded.clear()                                   # a second rescore: nothing to encode
    out2 = Score(str(tmp_path), None, "fp", "run-2").one(ReadTranscript(str(tmp_path))(item))
    assert out2["status"] == "ok" and sum(encoded) == 0
    assert json.loads(out2["table_row"]) == json.loads(out["table_row"])

    # as the flow feeds it: rescore rows without their transcript, read by Score itself;
    # a missing transcript fails that call alone, at the read_transcript stage
    rows = [_row(item, path="rescore"), _row(dict(item, call_id="gone"), path="rescore")]
    out3, gone = Score(str(tmp_path), None, "fp", "run-3").score_rows(rows)
    assert out3["status"] == "ok" and json.loads(out3["table_row"]) == json.loads(out["table_row"])
    assert gone["status"] == "failed" and gone["stage"] == "read_transcript", gone
    assert "gone" in gone["error"]


def test_results_fold_keeps_each_calls_last_outcome_in_columns(monkeypatch):
    """The driver folds results into frames as they stream (chunks of CHUNK calls): a
    call's last result wins, failures leave no row, and pending rows of a killed run
    are kept unless this run has a newer outcome for the call."""
    import dataclasses

    from callcoach.commit import _Results

    monkeypatch.setattr(_Results, "CHUNK", 2)   # several chunks from a few calls

    def res(cid, status, talk=None):
        e = dataclasses.asdict(_entry(cid, status="scored" if status == "ok" else "failed"))
        return {"call_id": cid, "status": status, "entry": e,
                "table_row": json.dumps({"call_id": cid, "talk_ratio_agent": talk}),
                "insight_row": json.dumps({"call_id": cid})}

    ledger = {"old": _entry("old")}
    pending = {"p1": {"call_id": "p1", "talk_ratio_agent": 0.1},
               "p2": {"call_id": "p2", "talk_ratio_agent": 0.2}}
    r = _Results(ledger, pending, {k: {"call_id": k} for k in pending})
    for x in [res("a", "ok", 0.3), res("b", "failed"), res("c", "ok", 0.4), res("p2", "failed"),
              res("c", "ok", 0.5), res("d", "ok", 0.6), res("d", "failed")]:
        r.add(x)
    calls, insights = r.frames()
    got = dict(zip(calls["call_id"].to_list(), calls["talk_ratio_agent"].to_list()))
    assert got == {"p1": 0.1, "a": 0.3, "c": 0.5}
    assert sorted(insights["call_id"].to_list()) == ["a", "c", "p1"]
    assert r.count == 7
    assert ledger["b"].status == "failed" and ledger["d"].status == "failed"
    assert ledger["c"].status == "scored" and "old" in ledger


def test_rows_between_stages_have_a_typed_schema():
    """Nested values travel as Arrow structs and maps, not JSON text, and come back as
    the dicts the stages made."""
    import dataclasses

    import pyarrow as pa

    from callcoach.stages.rows import _row, row_schema, rows_table, table_rows

    row = _row(_call("c1"), audio={"source_rate": 8000, "codec": "flac", "sha256": "ab"},
               timings={"asr_s": 1.5, "diarize_s": 0.25}, pii={"EMAIL": 2, "SSN": 0},
               entry=dataclasses.asdict(_entry("c1")))
    table = rows_table([row, _row(_call("c2"))])
    assert table.schema == row_schema()
    assert pa.types.is_struct(table.schema.field("entry").type)
    assert pa.types.is_map(table.schema.field("pii").type)
    back = table_rows(table)
    assert back[0] == row
    assert back[1]["entry"] is None and back[1]["audio"] is None and back[1]["pii"] is None


def test_run_summary_counts_each_result_as_it_streams():
    from callcoach.stages.rows import _row
    from callcoach.summary import RunSummary

    s = RunSummary(run_id="r")
    s.add(_row(_call("a"), duration_s=60.0, timings={"asr_s": 2.0, "diarize_s": 1.0},
               pii={"EMAIL": 1}))
    s.add(_row(_call("b"), path="rescore", pii={"EMAIL": 2}))
    s.add(_row(_call("c"), status="failed", stage="decode", error="empty file"))
    d = s.to_dict()
    assert (d["scored"], d["transcribed"], d["rescored"], d["failed"]) == (2, 1, 1, 1)
    assert (s.audio_s, s.asr_s, s.diarize_s) == (60.0, 2.0, 1.0)
    assert d["pii_redacted"] == {"EMAIL": 3}
    assert d["failures"] == [{"call_id": "c", "source_key": "c.wav", "stage": "decode",
                              "reason": "empty file"}]
