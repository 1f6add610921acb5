"""Planning: which input is which call, and what each call needs this run.

Pure driver-side logic, no Ray: list the inputs (audio or existing transcripts) and the
stored transcripts, give each a stable call_id, and split the calls into transcribe /
re-score / unchanged against the ledger, the speech fingerprint and the rule versions.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from dataclasses import dataclass

from .audio import AUDIO_EXTENSIONS
from .ledger import Entry
from .speech.asr import METHOD as ASR_METHOD
from .speech.stage import SpeechConfig
from .storage import ObjectInfo, Store
from .transcript import SCHEMA_VERSION as TRANSCRIPT_SCHEMA

# where a run's outputs live under --output
TRANSCRIPTS = "transcripts"
REPORTS = "reports"
TABLES = "tables"


# -- naming ------------------------------------------------------------------------------

_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


def call_ids(keys: list[str]) -> dict[str, str]:
    """call_id for each input key: the file name without extension, made safe.

    Never trusted as a path: unsafe characters are replaced, and when that changed the name
    or two keys share a stem, a short hash of the full key keeps ids unique.  Ids are also
    unique ignoring case (a case-insensitive file system would merge "A" and "a"), and an
    unchanged name that happens to equal another key's hashed id cannot take it: every key
    in such a clash gets a longer hash of its own.
    """
    stems = {}
    for key in keys:
        name = key.rsplit("/", 1)[-1]
        stem = name.rsplit(".", 1)[0] if "." in name else name
        stems[key] = stem
    counts: dict[str, int] = {}
    for stem in stems.values():
        counts[stem] = counts.get(stem, 0) + 1
    out = {}
    for key, stem in stems.items():
        safe = _SAFE.sub("_", stem).strip("._")[:120] or "call"
        if safe != stem or counts[stem] > 1:
            safe = f"{safe}-{hashlib.sha256(key.encode()).hexdigest()[:10]}"
        out[key] = safe
    for width in (16, 32, 64):
        groups: dict[str, list[str]] = {}
        for key, cid in out.items():
            groups.setdefault(cid.lower(), []).append(key)
        clashes = [k for ks in groups.values() if len(ks) > 1 for k in ks]
        if not clashes:
            break
        for key in clashes:
            base = _SAFE.sub("_", stems[key]).strip("._")[:120] or "call"
            out[key] = f"{base}-{hashlib.sha256(key.encode()).hexdigest()[:width]}"
    return out


def skip_reason(key: str) -> str | None:
    """Why an input key is not read (None: it is): a part starting with '.' is hidden
    ('..' and '.' parts could name another object; '.name' is a hidden file)."""
    parts = key.split("/")
    if any(p in (".", "..") for p in parts):
        return "input key refused: it has a '.' or '..' part, which could name another object"
    if any(p.startswith(".") for p in parts):
        return "input key skipped: hidden (a part of the key starts with '.')"
    return None


def list_calls(store: Store, limit: int | None = None, since: float | None = None,
               prefix: str = "", skipped: list | None = None) -> list[dict]:
    """The calls under the input, sorted by call_id.  Keys that are not read (hidden, '..')
    are appended to ``skipped`` (rows with a ``reason``) when a list is given."""
    objects: list[ObjectInfo] = [o for o in store.list(prefix, AUDIO_EXTENSIONS, hidden=True)
                                 if since is None or (o.modified or 0) >= since]
    return _listed(objects, limit, skipped)


def _listed(objects: list[ObjectInfo], limit: int | None, skipped: list | None) -> list[dict]:
    """Listed input objects as call rows, sorted by call_id; keys that are not read go to
    ``skipped`` (with their reason) when a list is given, the rest are cut to ``limit``."""
    ids = call_ids([o.key for o in objects])
    rows = [{"key": o.key, "call_id": ids[o.key], "size": o.size, "etag": o.etag,
             "modified": float(o.modified or 0.0), "reason": skip_reason(o.key)}
            for o in objects]
    rows.sort(key=lambda r: r["call_id"])
    if skipped is not None:
        skipped.extend(dict(r) for r in rows if r["reason"])
    rows = [r for r in rows if not r.pop("reason")]
    return rows[:limit] if limit else rows


def sidecar_key(audio_key: str) -> str:
    return audio_key.rsplit(".", 1)[0] + ".json"


# -- transcripts in (callcoach score-transcripts) -----------------------------------------
# An imported transcript's "speech fingerprint": nothing of ours made it; a change of the
# input file (etag) is what makes it new.
IMPORT_FINGERPRINT = "imported-v1"
TRANSCRIPT_SIDECAR = ".meta.json"      # NAME.meta.json beside NAME.json/.jsonl/.csv


def transcript_sidecar_key(key: str) -> str:
    return key.rsplit(".", 1)[0] + TRANSCRIPT_SIDECAR


def list_transcript_files(store: Store, limit: int | None = None, since: float | None = None,
                          prefix: str = "", skipped: list | None = None) -> list[dict]:
    """Existing transcripts under the input (NAME.meta.json sidecars excluded), like
    list_calls: sorted by call_id, unread keys appended to ``skipped`` with a reason."""
    from .importers import transcript_suffixes

    objects = [o for o in store.list(prefix, transcript_suffixes(), hidden=True)
               if not o.key.endswith(TRANSCRIPT_SIDECAR)
               and (since is None or (o.modified or 0) >= since)]
    return _listed(objects, limit, skipped)


def speech_fingerprint(speech: SpeechConfig) -> str:
    """What decides a transcript's content: models, diarization, language, decoding.
    Device, compute type and batch size are left out: they change speed, not the call."""
    m = speech.models
    doc = {"transcript_schema": TRANSCRIPT_SCHEMA, "asr": m.location(m.asr),
           "diarization": speech.diarization,
           "diarization_model": m.location(m.diarization) if m.diarization else None,
           "alignment": m.location(m.alignment) if m.alignment else None,
           "language": speech.language, "beam_size": speech.beam_size,
           "initial_prompt": speech.initial_prompt, "asr_method": ASR_METHOD,
           "two_party": speech.two_party}
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:16]


def load_rules(ruleset_path: str | None, categories_path: str | None):
    """(RuleSet, Categories) from their files, or the defaults; the categories' acts are
    checked against the rule set (ValueError naming the file on a mismatch)."""
    from .coaching.rules import default_ruleset, load_ruleset
    from .insights.categories import default_categories, load_categories

    rules = load_ruleset(ruleset_path) if ruleset_path else default_ruleset()
    cats = load_categories(categories_path) if categories_path else default_categories()
    cats.check_acts(rules)
    return rules, cats


@dataclass
class Plan:
    transcribe: list[dict]
    rescore: list[dict]
    unchanged: list[dict]


# A failure at these stages depends on the input bytes alone: retrying the same bytes
# gives the same verdict, so an unchanged bad file is not re-read every night.
DETERMINISTIC_FAILURES = ("decode", "sidecar", "key", "import")


def plan(calls: list[dict], ledger: dict[str, Entry], fingerprint: str, ruleset_version: str,
         force: bool = False, categories_version: str | None = None,
         acts_model: str | None = None, *, stored: bool = False) -> Plan:
    """What each call needs this run, from its ledger entry: a new or changed input, a
    failed call or a new speech fingerprint is transcribed; new rules, categories or act
    model re-score the stored transcript; the rest is unchanged (``force``: everything is
    done again).  A version left None is not compared.

    ``stored``: the calls are stored transcripts (callcoach rescore, _stored_transcripts):
    nothing is transcribed, and a call is re-scored unless its entry was made with these
    versions."""
    p = Plan([], [], [])
    for c in calls:
        e = ledger.get(c["call_id"])
        if stored:
            fresh = not force and e is not None and not _rules_changed(
                e, ruleset_version, categories_version, acts_model)
            (p.unchanged if fresh else p.rescore).append(c)
            continue
        same = e is not None and e.same_input(c["key"], c["etag"], c["size"])
        if not force and same and e.status == "failed" and e.stage in DETERMINISTIC_FAILURES:
            p.unchanged.append(c)
        elif force or not same or e.status != "scored" or e.speech_fingerprint != fingerprint:
            p.transcribe.append(c)
        elif _rules_changed(e, ruleset_version, categories_version, acts_model):
            p.rescore.append(dict(c, entry=dataclasses.asdict(e)))
        else:
            p.unchanged.append(c)
    return p


def _rules_changed(e: Entry, ruleset_version: str, categories_version: str | None,
                   acts_model: str | None) -> bool:
    """The call's report was made with other rules, categories or act model."""
    return e.ruleset_version != ruleset_version or (
        categories_version is not None and e.categories_version != categories_version) or (
        acts_model is not None and e.acts_model != acts_model)


def _disambiguate(calls: list[dict], ledger: dict[str, Entry]) -> list[dict]:
    """Stable, unique call_ids across runs.  An input key the ledger knows keeps the
    call_id it was given (even when a new file with the same name now makes its listed id
    a hashed one), so it is never processed twice under two ids; a call_id already taken
    by another input key (the same file name in another day's folder, say) gets a hash of
    its own key, so it never overwrites the earlier call."""
    known: dict[str, str] = {}
    for cid, e in sorted(ledger.items()):
        if e.source_key:
            known.setdefault(e.source_key, cid)
    out, used = [], set()
    for c in calls:
        cid = c["call_id"]
        e = ledger.get(cid)
        if c["key"] in known and (e is None or e.source_key != c["key"]):
            cid = known[c["key"]]            # the id this input was given before
            e = ledger.get(cid)
        if (e is not None and e.source_key and e.source_key != c["key"]) or cid in used:
            cid = f"{cid}-{hashlib.sha256(c['key'].encode()).hexdigest()[:10]}"
        used.add(cid)
        out.append(dict(c, call_id=cid) if cid != c["call_id"] else c)
    return out


def _stored_transcripts(store: Store, ledger: dict[str, Entry]) -> list[dict]:
    calls = []
    for obj in store.list(TRANSCRIPTS, (".json",)):
        call_id = obj.key.rsplit("/", 1)[-1][: -len(".json")]
        e = ledger.get(call_id)
        calls.append({"key": e.source_key if e else "", "call_id": call_id,
                      "size": e.size if e else 0, "etag": e.etag if e else "",
                      # a day's last resort, for transcripts made before they recorded the
                      # recording's last-modified time (tables.call_start)
                      "modified": float(obj.modified or 0.0), "modified_source": "transcript_mtime",
                      "entry": dataclasses.asdict(e) if e else None})
    return sorted(calls, key=lambda c: c["call_id"])
