"""Transcripts a contact centre already has, read into callcoach's ``Transcript``.

``callcoach score-transcripts`` scores them without audio, through the same engine as
recorded calls.  Formats (``detect_format`` tells them apart by content, not by name):

* ``callcoach``: the project's own transcript JSON (``"schema": "callcoach.transcript"``).
* ``transcribe``: Amazon Transcribe batch output (``results.items`` with word times;
  speakers from ``speaker_label`` / ``speaker_labels.segments`` or channels from
  ``channel_labels``).  Punctuation items attach to the word before them.
* ``transcribe_call_analytics``: Amazon Transcribe Call Analytics output (``Transcript``:
  segments with ``ParticipantRole`` AGENT/CUSTOMER and millisecond offsets).
* ``jsonl``: one turn per line: ``text`` and ``speaker``/``role`` (agent, customer or any
  label) or ``channel``, ``start``/``end`` in seconds (or ``start_ms``/``end_ms``).
* ``csv``: the same columns with a header row.

Roles: a role the source states (agent/customer) is kept; channels use the sidecar's
``agent_channel``; a speaker named by the sidecar's ``agent_speaker`` is the agent; other
labels are assigned by ``speech.roles.assign_roles`` (content cues, first speaker).
Anything malformed raises ``TranscriptImportError`` with one line saying what and where.
"""

from __future__ import annotations

import csv
import io
import json
import math
from typing import Any, Mapping

from .speech.roles import assign_roles
from .transcript import Transcript, Turn, Word

FORMATS = ("callcoach", "transcribe", "transcribe_call_analytics", "jsonl", "csv")
MAX_BYTES = 50 * 1024 * 1024
TURN_GAP_S = 1.5


class TranscriptImportError(ValueError):
    """A transcript file cannot be read; the message says why and where."""


def transcript_suffixes() -> tuple[str, ...]:
    return (".json", ".jsonl", ".csv")


def _num(v: Any, where: str, what: str) -> float:
    if isinstance(v, bool) or v is None or v == "":
        raise TranscriptImportError(f"{where}: {what} is missing")
    try:
        x = float(v)
    except (TypeError, ValueError):
        raise TranscriptImportError(f"{where}: {what} {str(v)[:40]!r} is not a number") from None
    if not math.isfinite(x) or x < 0:
        raise TranscriptImportError(f"{where}: {what} {x!r} must be a finite number >= 0")
    return x


def _text(data: bytes, name: str) -> str:
    if len(data) > MAX_BYTES:
        raise TranscriptImportError(f"{name}: {len(data)} bytes is over the {MAX_BYTES >> 20} MB limit")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise TranscriptImportError(f"{name}: not UTF-8 text (byte {e.start})") from None


def detect_format(name: str, data: bytes) -> str:
    text = _text(data, name)
    stripped = text.lstrip()
    if not stripped:
        raise TranscriptImportError(f"{name}: empty file")
    if name.lower().endswith(".jsonl"):
        return "jsonl"
    if stripped[0] in "{[":
        try:
            doc = json.loads(text)
        except ValueError:
            doc = None
        if isinstance(doc, dict):
            if doc.get("schema") == "callcoach.transcript":
                return "callcoach"
            if isinstance(doc.get("results"), dict) and "items" in doc["results"]:
                return "transcribe"
            if isinstance(doc.get("Transcript"), list):
                return "transcribe_call_analytics"
            if {"text", "role", "speaker", "channel"} & set(doc):
                return "jsonl"   # a single-turn JSONL file
            raise TranscriptImportError(f"{name}: JSON of no known transcript shape (expected a callcoach "
                                        "transcript, Amazon Transcribe or Call Analytics output)")
        if doc is None and stripped[0] == "{":
            return "jsonl"
        raise TranscriptImportError(f"{name}: JSON of no known transcript shape")
    return "csv"


# ---------------------------------------------------------------------------------------
def _roles(turns: list[Turn], metadata: Mapping, fmt: str) -> tuple[list[Turn], dict]:
    labels = {t.speaker for t in turns}
    if labels <= {"agent", "customer"}:
        return turns, {"method": "source"}
    if labels & {"agent", "customer"}:
        raise TranscriptImportError(f"{fmt}: speakers mix roles and labels: {sorted(labels)[:6]}")
    if len(labels) > 8:
        raise TranscriptImportError(f"{fmt}: {len(labels)} speaker labels; at most 8 can be mapped "
                                    "to agent and customer")
    ra = assign_roles(turns, metadata)
    out = [Turn(ra.roles.get(t.speaker, "customer"), t.start, t.end, t.text, t.words) for t in turns]
    return out, ra.describe()


def _finish(turns: list[Turn], call_id: str, fmt: str, metadata: Mapping | None,
            roles_from_source: bool = False) -> Transcript:
    md = dict(metadata or {})
    turns = [t for t in turns if t.text.strip()]
    if not turns:
        raise TranscriptImportError(f"{fmt}: no turn with text")
    turns.sort(key=lambda t: (t.start, t.end))
    turns, roles = _roles(turns, md, fmt)
    return Transcript(call_id=call_id, duration_s=max(t.end for t in turns), turns=tuple(turns),
                      models={"asr": f"imported:{fmt}", "diarization": f"imported:{fmt}"},
                      language=md.get("language") if isinstance(md.get("language"), str) else None,
                      metadata=md, roles=roles)


def _label(v: Any) -> str:
    s = " ".join(str(v).split())[:40]
    low = s.lower()
    if low in ("agent", "customer"):
        return low
    if low in ("rep", "representative", "advisor", "adviser", "operator"):
        return "agent"
    if low in ("caller", "client", "member"):
        return "customer"
    return s or "?"


def _turn(where: str, speaker: str, start: float, end: float, text: Any) -> Turn:
    if end < start:
        raise TranscriptImportError(f"{where}: end {end} is before start {start}")
    if not isinstance(text, str):
        raise TranscriptImportError(f"{where}: text must be a string")
    return Turn(speaker, start, end, " ".join(text.split()))


def _row_turn(row: Mapping, where: str, metadata: Mapping) -> Turn:
    if not isinstance(row, Mapping):
        raise TranscriptImportError(f"{where}: expected an object with text, speaker, start, end")
    if "text" not in row or row["text"] is None:
        raise TranscriptImportError(f"{where}: text is missing")
    if row.get("role") not in (None, ""):
        spk = _label(row["role"])
    elif row.get("speaker") not in (None, ""):
        spk = _label(row["speaker"])
    elif row.get("channel") not in (None, ""):
        ch = row["channel"]
        try:
            spk = f"CH{int(float(ch))}"
        except (TypeError, ValueError):
            raise TranscriptImportError(f"{where}: channel {str(ch)[:20]!r} is not a number") from None
    else:
        raise TranscriptImportError(f"{where}: needs a speaker, role or channel")
    if row.get("start") not in (None, ""):
        start = _num(row.get("start"), where, "start")
        end = _num(row.get("end"), where, "end")
    else:
        start = _num(row.get("start_ms"), where, "start (or start_ms)") / 1000.0
        end = _num(row.get("end_ms"), where, "end (or end_ms)") / 1000.0
    return _turn(where, spk, start, end, row["text"])


def _parse_jsonl(text: str, call_id: str, metadata) -> Transcript:
    turns = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as e:
            raise TranscriptImportError(f"jsonl line {n}: not JSON ({e.msg})") from None
        turns.append(_row_turn(row, f"jsonl line {n}", metadata))
    return _finish(turns, call_id, "jsonl", metadata)


def _parse_csv(text: str, call_id: str, metadata) -> Transcript:
    try:
        reader = csv.DictReader(io.StringIO(text, newline=""))
        fields = [f.strip().lower() for f in (reader.fieldnames or [])]
        if "text" not in fields:
            raise TranscriptImportError(f"csv: the header row has no 'text' column (columns: {fields[:8]})")
        turns = []
        for n, raw in enumerate(reader, 2):
            row = {str(k).strip().lower(): (v.strip() if isinstance(v, str) else v)
                   for k, v in raw.items() if k is not None}
            if not any(row.values()):
                continue
            turns.append(_row_turn(row, f"csv row {n}", metadata))
    except csv.Error as e:
        raise TranscriptImportError(f"csv: {e}") from None
    return _finish(turns, call_id, "csv", metadata)


def _parse_transcribe(doc: Mapping, call_id: str, metadata) -> Transcript:
    res = doc["results"]
    items = res.get("items")
    if not isinstance(items, list):
        raise TranscriptImportError("transcribe: results.items must be a list")
    # speaker of a time, from segments (speaker or channel), when items carry no label
    spans: list[tuple[float, float, str]] = []
    sl = res.get("speaker_labels")
    cl = res.get("channel_labels")
    try:
        if isinstance(sl, dict):
            for seg in sl.get("segments") or []:
                for it in seg.get("items") or []:
                    spans.append((float(it["start_time"]), float(it["end_time"]),
                                  str(it.get("speaker_label") or seg.get("speaker_label"))))
        if isinstance(cl, dict):
            for ch in cl.get("channels") or []:
                label = str(ch.get("channel_label", "ch_0"))
                for it in ch.get("items") or []:
                    if "start_time" in it:
                        spans.append((float(it["start_time"]), float(it["end_time"]), label))
    except (KeyError, TypeError, ValueError, AttributeError):
        raise TranscriptImportError("transcribe: malformed speaker_labels/channel_labels") from None
    spans.sort()

    def who(start: float, end: float, item: Mapping) -> str:
        if item.get("speaker_label"):
            return str(item["speaker_label"])
        if item.get("channel_label"):
            return str(item["channel_label"])
        for a, b, lab in spans:
            if a <= start + 1e-3 and b >= end - 1e-3:
                return lab
        best, lab = -1.0, "spk_0"
        for a, b, l in spans:
            o = min(b, end) - max(a, start)
            if o > best:
                best, lab = o, l
        return lab

    words: list[tuple[str, Word]] = []
    for n, it in enumerate(items):
        where = f"transcribe item {n}"
        if not isinstance(it, Mapping):
            raise TranscriptImportError(f"{where}: expected an object")
        alts = it.get("alternatives")
        if not isinstance(alts, list) or not alts or not isinstance(alts[0], Mapping):
            raise TranscriptImportError(f"{where}: alternatives missing")
        content = alts[0].get("content")
        if not isinstance(content, str):
            raise TranscriptImportError(f"{where}: content missing")
        if it.get("type") == "punctuation":
            if words:
                lab, w = words[-1]
                words[-1] = (lab, Word(w.w + content, w.start, w.end, w.p))
            continue
        start = _num(it.get("start_time"), where, "start_time")
        end = _num(it.get("end_time"), where, "end_time")
        if end < start:
            raise TranscriptImportError(f"{where}: end_time {end} is before start_time {start}")
        try:
            p = float(alts[0].get("confidence", 1.0))
        except (TypeError, ValueError):
            p = 1.0
        if not math.isfinite(p):
            p = 1.0
        words.append((who(start, end, it), Word(content, start, end, min(max(p, 0.0), 1.0))))
    turns: list[Turn] = []
    cur: list[Word] = []
    cur_lab = None
    for lab, w in words:
        if cur and (lab != cur_lab or w.start - cur[-1].end > TURN_GAP_S):
            turns.append(Turn(cur_lab, cur[0].start, cur[-1].end, " ".join(x.w for x in cur), tuple(cur)))
            cur = []
        cur_lab = lab
        cur.append(w)
    if cur:
        turns.append(Turn(cur_lab, cur[0].start, cur[-1].end, " ".join(x.w for x in cur), tuple(cur)))
    md = dict(metadata or {})
    if isinstance(cl, dict) and "agent_channel" in md:
        # the sidecar's agent_channel (0/1) names Transcribe's ch_0/ch_1
        try:
            md.setdefault("agent_speaker", f"ch_{int(md['agent_channel'])}")
        except (TypeError, ValueError):
            pass
    return _finish(turns, call_id, "transcribe", md)


def _parse_call_analytics(doc: Mapping, call_id: str, metadata) -> Transcript:
    turns = []
    for n, seg in enumerate(doc["Transcript"]):
        where = f"call analytics segment {n}"
        if not isinstance(seg, Mapping):
            raise TranscriptImportError(f"{where}: expected an object")
        role = seg.get("ParticipantRole")
        if not isinstance(role, str) or role.upper() not in ("AGENT", "CUSTOMER"):
            raise TranscriptImportError(f"{where}: ParticipantRole {str(role)[:20]!r} is not AGENT or CUSTOMER")
        content = seg.get("Content")
        if not isinstance(content, str):
            raise TranscriptImportError(f"{where}: Content missing")
        start = _num(seg.get("BeginOffsetMillis"), where, "BeginOffsetMillis") / 1000.0
        end = _num(seg.get("EndOffsetMillis"), where, "EndOffsetMillis") / 1000.0
        t = _turn(where, role.lower(), start, end, content)
        ws = []
        for it in seg.get("Items") or []:
            if not isinstance(it, Mapping) or not isinstance(it.get("Content"), str):
                continue
            if it.get("Type") == "punctuation":
                if ws:
                    w = ws[-1]
                    ws[-1] = Word(w.w + it["Content"], w.start, w.end, w.p)
                continue
            try:
                a = float(it["BeginOffsetMillis"]) / 1000.0
                b = float(it["EndOffsetMillis"]) / 1000.0
                p = float(it.get("Confidence", 1.0))
            except (KeyError, TypeError, ValueError):
                continue
            if math.isfinite(a) and math.isfinite(b) and 0 <= a <= b:
                ws.append(Word(it["Content"], a, b, min(max(p, 0.0), 1.0) if math.isfinite(p) else 1.0))
        turns.append(Turn(t.speaker, t.start, t.end, t.text, tuple(ws)))
    return _finish(turns, call_id, "transcribe_call_analytics", metadata)


def parse_transcript(name: str, data: bytes, *, call_id: str,
                     metadata: Mapping | None = None) -> Transcript:
    """Read one transcript file of any supported format (raises TranscriptImportError)."""
    fmt = detect_format(name, data)
    text = _text(data, name)
    try:
        if fmt == "jsonl":
            return _parse_jsonl(text, call_id, metadata)
        if fmt == "csv":
            return _parse_csv(text, call_id, metadata)
        doc = json.loads(text)
        if fmt == "callcoach":
            d = dict(doc)
            d.pop("features", None)
            d["call_id"] = call_id
            try:
                tr = Transcript.from_dict(d)
            except (KeyError, TypeError, ValueError) as e:
                raise TranscriptImportError(f"callcoach transcript: {e}") from None
            if not tr.turns:
                raise TranscriptImportError("callcoach transcript: no turns")
            bad = {t.speaker for t in tr.turns} - {"agent", "customer"}
            if bad:
                raise TranscriptImportError(f"callcoach transcript: speakers {sorted(bad)[:4]} are not agent/customer")
            md = {**dict(tr.metadata), **dict(metadata or {})}
            return Transcript(call_id=call_id, duration_s=tr.duration_s, turns=tr.turns, models=tr.models,
                              language=tr.language, audio=tr.audio, metadata=md, roles=tr.roles,
                              decoding=tr.decoding)
        if fmt == "transcribe":
            return _parse_transcribe(doc, call_id, metadata)
        return _parse_call_analytics(doc, call_id, metadata)
    except TranscriptImportError as e:
        raise TranscriptImportError(f"{name}: {e}") from None
    except (KeyError, TypeError, ValueError, AttributeError, IndexError, RecursionError) as e:
        raise TranscriptImportError(f"{name}: malformed {fmt} transcript ({type(e).__name__}: {str(e)[:80]})") from None
