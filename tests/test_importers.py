"""Transcripts in: every supported format, roles, errors, and hostile input.

Documents are built here in the shapes AWS documents for Transcribe and Transcribe Call
Analytics output; the dialogue lines are our own."""

from __future__ import annotations

import json
import random

import pytest

from callcoach.importers import (TranscriptImportError, detect_format, parse_transcript)

AGENT_LINE = "Thank you for calling Larkspur Energy, how can I help you today?"
CUSTOMER_LINE = "My meter reading looks wrong on the last bill."


def _items(words, speaker=None, channel=None, t0=0.0):
    out, t = [], t0
    for w in words:
        if w in ",.?":
            out.append({"type": "punctuation", "alternatives": [{"content": w, "confidence": "0.0"}]})
            continue
        it = {"type": "pronunciation", "start_time": f"{t:.2f}", "end_time": f"{t + 0.3:.2f}",
              "alternatives": [{"content": w, "confidence": "0.93"}]}
        if speaker:
            it["speaker_label"] = speaker
        if channel:
            it["channel_label"] = channel
        out.append(it)
        t += 0.35
    return out, t


def transcribe_doc(channel_mode=False):
    a, t = _items("Thank you for calling Larkspur Energy , how can I help you today ?".split(),
                  None if channel_mode else "spk_0", "ch_0" if channel_mode else None)
    c, t2 = _items("My meter reading looks wrong on the last bill .".split(),
                   None if channel_mode else "spk_1", "ch_1" if channel_mode else None, t + 0.4)
    doc = {"jobName": "job-1", "accountId": "1", "status": "COMPLETED",
           "results": {"transcripts": [{"transcript": AGENT_LINE + " " + CUSTOMER_LINE}],
                       "items": a + c}}
    if channel_mode:
        for it in doc["results"]["items"]:
            it.pop("channel_label", None)
        doc["results"]["channel_labels"] = {"number_of_channels": 2, "channels": [
            {"channel_label": "ch_0", "items": [i for i in a if "start_time" in i]},
            {"channel_label": "ch_1", "items": [i for i in c if "start_time" in i]}]}
    else:
        doc["results"]["speaker_labels"] = {"speakers": 2, "segments": [
            {"speaker_label": "spk_0", "start_time": "0.00", "end_time": f"{t:.2f}",
             "items": [{"speaker_label": "spk_0", "start_time": i["start_time"], "end_time": i["end_time"]}
                       for i in a if "start_time" in i]},
            {"speaker_label": "spk_1", "start_time": f"{t + 0.4:.2f}", "end_time": f"{t2:.2f}",
             "items": [{"speaker_label": "spk_1", "start_time": i["start_time"], "end_time": i["end_time"]}
                       for i in c if "start_time" in i]}]}
    return doc


def analytics_doc():
    return {"JobStatus": "COMPLETED", "LanguageCode": "en-US", "Categories": {"MatchedCategories": []},
            "ConversationCharacteristics": {},
            "Transcript": [
                {"Id": "s1", "ParticipantRole": "AGENT", "Content": AGENT_LINE,
                 "BeginOffsetMillis": 100, "EndOffsetMillis": 3900,
                 "Items": [{"Content": "Thank", "BeginOffsetMillis": 100, "EndOffsetMillis": 300,
                            "Type": "pronunciation", "Confidence": 0.99},
                           {"Content": ",", "Type": "punctuation"}]},
                {"Id": "s2", "ParticipantRole": "CUSTOMER", "Content": CUSTOMER_LINE,
                 "BeginOffsetMillis": 4200, "EndOffsetMillis": 7000}]}


def test_amazon_transcribe_speakers_become_turns_with_words_roles_by_content():
    data = json.dumps(transcribe_doc()).encode()
    assert detect_format("job.json", data) == "transcribe"
    tr = parse_transcript("job.json", data, call_id="c1")
    assert [t.speaker for t in tr.turns] == ["agent", "customer"]
    assert tr.turns[0].text == "Thank you for calling Larkspur Energy, how can I help you today?"
    assert tr.turns[1].words[-1].w == "bill."        # punctuation attached to the word before
    assert tr.turns[0].words[0].p == pytest.approx(0.93)
    assert tr.roles["method"] == "content"
    assert tr.models["asr"] == "imported:transcribe"
    assert tr.duration_s == pytest.approx(tr.turns[-1].end)


def test_amazon_transcribe_channels_use_the_sidecar_agent_channel():
    data = json.dumps(transcribe_doc(channel_mode=True)).encode()
    # the sidecar says the agent is on channel 1: content cues are overruled
    tr = parse_transcript("job.json", data, call_id="c2", metadata={"agent_channel": 1})
    assert [t.speaker for t in tr.turns] == ["customer", "agent"]
    assert tr.roles["method"] == "sidecar"
    tr = parse_transcript("job.json", data, call_id="c2")
    assert [t.speaker for t in tr.turns] == ["agent", "customer"]


def test_call_analytics_roles_come_from_the_source():
    data = json.dumps(analytics_doc()).encode()
    assert detect_format("ca.json", data) == "transcribe_call_analytics"
    tr = parse_transcript("ca.json", data, call_id="c3")
    assert [(t.speaker, t.start, t.end) for t in tr.turns] == [("agent", 0.1, 3.9), ("customer", 4.2, 7.0)]
    assert tr.turns[0].words[0].w == "Thank,"
    assert tr.roles == {"method": "source"}


def test_jsonl_and_csv_turns_with_roles_labels_channels_and_ms():
    jl = "\n".join([json.dumps({"role": "Agent", "start": 0, "end": 3.5, "text": AGENT_LINE}), "",
                    json.dumps({"role": "customer", "start_ms": 3800, "end_ms": 6000, "text": CUSTOMER_LINE})])
    tr = parse_transcript("t.jsonl", jl.encode(), call_id="c4")
    assert [t.speaker for t in tr.turns] == ["agent", "customer"] and tr.turns[1].start == 3.8
    csv_text = ("\ufeffchannel,start,end,text\n"
                f"1,0.0,3.5,\"{AGENT_LINE}\"\n"
                f"0,3.8,6.0,\"{CUSTOMER_LINE[:-1]}, and\nthe one before.\"\n")
    tr = parse_transcript("t.csv", csv_text.encode(), call_id="c5", metadata={"agent_channel": 1})
    assert [t.speaker for t in tr.turns] == ["agent", "customer"]
    assert tr.turns[1].text.endswith("last bill, and the one before.")
    # unlabelled speakers: content decides
    csv2 = f"speaker,start,end,text\nB,4,6,{CUSTOMER_LINE}\nA,0,3.5,\"{AGENT_LINE}\"\n"
    tr = parse_transcript("t.csv", csv2.encode(), call_id="c6")
    assert [t.speaker for t in tr.turns] == ["agent", "customer"]


def test_own_transcripts_round_trip_and_drop_stale_features():
    from callcoach.transcript import Transcript, Turn
    src = Transcript("x", 7.0, (Turn("agent", 0, 3, AGENT_LINE), Turn("customer", 3.5, 7, CUSTOMER_LINE)),
                     models={"asr": "whisper"}, features={"version": "old"})
    tr = parse_transcript("x.json", src.to_json(), call_id="renamed", metadata={"team": "t1"})
    assert tr.call_id == "renamed" and tr.features is None and tr.metadata["team"] == "t1"
    assert tr.turns == src.turns


@pytest.mark.parametrize("name,data,needle", [
    ("a.json", b"\xff\xfe\x00", "not UTF-8"),
    ("a.json", b"", "empty file"),
    ("a.json", b'{"hello": 1}', "no known transcript shape"),
    ("a.jsonl", b'{"role": "agent", "start": 0, "end": 1}\n', "line 1: text is missing"),
    ("a.jsonl", b'{"role": "agent", "start": 2, "end": 1, "text": "hi"}\n', "before start"),
    ("a.jsonl", b'{"role": "agent", "start": "soon", "end": 1, "text": "hi"}\n', "is not a number"),
    ("a.jsonl", b'{"role": "agent", "start": 0, "end": 1, "text": "hi"}\n{oops\n', "line 2: not JSON"),
    ("a.csv", b"who,when,what\nx,1,y\n", "no 'text' column"),
    ("a.csv", b"speaker,start,end,text\nA,0,1,\n", "no turn with text"),
    ("a.jsonl", b'{"start": 0, "end": 1, "text": "hi"}\n', "needs a speaker, role or channel"),
])
def test_bad_files_say_what_is_wrong(name, data, needle):
    with pytest.raises(TranscriptImportError, match=needle):
        parse_transcript(name, data, call_id="bad")


def test_oversized_file_is_refused_before_parsing(monkeypatch):
    import callcoach.importers as imp
    monkeypatch.setattr(imp, "MAX_BYTES", 100)
    with pytest.raises(TranscriptImportError, match="over the"):
        parse_transcript("big.json", b"{" + b" " * 200 + b"}", call_id="big")


def _mutate(rng: random.Random, node):
    """One random change somewhere in a JSON tree."""
    if isinstance(node, dict) and node:
        k = rng.choice(sorted(node))
        r = rng.random()
        if r < 0.2:
            del node[k]
        elif r < 0.4:
            node[k] = rng.choice([None, -1, "x", [], {}, 1e308, True, "1e400", float("nan")])
        else:
            _mutate(rng, node[k])
    elif isinstance(node, list) and node:
        i = rng.randrange(len(node))
        if rng.random() < 0.3:
            node[i] = rng.choice([None, 3, "y", {}, []])
        else:
            _mutate(rng, node[i])


def test_hostile_documents_only_ever_raise_the_import_error():
    """500 random mutations of valid documents of each JSON format (fixed seed): each one
    parses or raises TranscriptImportError, never anything else."""
    rng = random.Random(1205)
    bases = [transcribe_doc(), transcribe_doc(channel_mode=True), analytics_doc()]
    outcomes = {"ok": 0, "refused": 0}
    for i in range(500):
        doc = json.loads(json.dumps(bases[i % len(bases)]))
        for _ in range(rng.randint(1, 4)):
            _mutate(rng, doc)
        try:
            data = json.dumps(doc, allow_nan=True).encode()
        except ValueError:
            continue
        try:
            parse_transcript("f.json", data, call_id="f")
            outcomes["ok"] += 1
        except TranscriptImportError:
            outcomes["refused"] += 1
    assert outcomes["ok"] > 20 and outcomes["refused"] > 20, outcomes
