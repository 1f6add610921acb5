"""Hostile input keys: '../', absolute-looking paths, backslashes, control characters,
unicode look-alikes ('cаll-001' with a Cyrillic 'а' beside 'call-001'), case variants,
names that imitate another key's hashed id, and 1,000+ character keys.

None of them may produce a write outside the output prefix, and no two inputs may share a
call_id (so none overwrites another's transcript, report, ledger entry or table row);
call_ids are stable from run to run.  Checked on the naming rules directly, and by whole
runs of the job over a local folder (nested folders with odd names) and over S3 (keys put
directly with boto3), with real Ray, real decoding and real ASR for the readable calls.
"""

from __future__ import annotations

import hashlib
import random
import re
import unicodedata
from pathlib import Path

import boto3
import polars as pl
import pytest

from conftest import use_local_s3

from callcoach.planning import _disambiguate, call_ids, list_calls
from callcoach.ledger import Entry
from callcoach.storage import LocalStore, S3Store, safe_key

REPO = Path(__file__).resolve().parent.parent
GOOD_WAV = (REPO / "samples" / "calls" / "sample-02-handoff.wav").read_bytes()   # 35 s stereo
LONG = "/".join(["d" * 240] * 4) + "/" + "n" * 200          # 1,164 characters

HOSTILE = [
    "call-001.wav", "c\u0430ll-001.wav", "CALL-001.wav", "call-001.flac", "x/call-001.wav",
    "../../escape.wav", "a/../../b.wav", "/etc/passwd.wav", "a//b.wav", "./dot.wav",
    "..\\..\\windows.wav", "tab\there.wav", "new\nline.wav", "nul\x00byte.wav", "del\x7f.wav",
    "caf\u00e9.wav", unicodedata.normalize("NFD", "caf\u00e9.wav"), "\u202egnp.wav",
    ".hidden.wav", "...wav", "-rf.wav", "con.wav", "x?.wav", LONG + ".wav", LONG + "2.wav",
    "空白 name.wav", "emoji-\U0001F4DE.wav",
]
SAFE_ID = re.compile(r"^[A-Za-z0-9-][A-Za-z0-9._-]*$")


def _output_keys(call_id: str) -> list[str]:
    return [f"transcripts/{call_id}.json", f"reports/v1/{call_id}.json",
            f"reports/v1/{call_id}.html", f"state/entries/{call_id}.json"]


# -- the naming rules ---------------------------------------------------------------------

def test_call_ids_of_hostile_keys_are_safe_unique_and_order_independent():
    # an unchanged name equal to another key's hashed id must not take that id
    imitation = f"x-{hashlib.sha256(b'x?.wav').hexdigest()[:10]}.wav"
    keys = HOSTILE + [imitation]
    ids = call_ids(keys)
    assert len(ids) == len(keys)
    assert len({i.lower() for i in ids.values()}) == len(keys)     # unique, even ignoring case
    for key, cid in ids.items():
        assert SAFE_ID.match(cid), (key, cid)
        assert len(cid) <= 120 + 1 + 64
        for out in _output_keys(cid):
            assert safe_key(out) == out
    assert ids["con.wav"] == "con" and ids["-rf.wav"] == "-rf"   # plain names are kept
    assert ids["c\u0430ll-001.wav"].startswith("c_ll-001-")          # the look-alike is not
    # namesakes (another folder, another extension) each get a hash of their own key
    assert all(ids[k].startswith("call-001-")
               for k in ("call-001.wav", "call-001.flac", "x/call-001.wav"))
    for _ in range(5):
        shuffled = keys[:]
        random.Random(_).shuffle(shuffled)
        assert call_ids(shuffled) == ids


def test_every_output_path_of_a_hostile_call_id_stays_under_the_root(tmp_path):
    root = tmp_path / "out"
    store = LocalStore(root)
    for cid in call_ids(HOSTILE).values():
        for key in _output_keys(cid):
            store.write(key, b"x")
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert len(files) == 4 * len(HOSTILE)
    assert all(root.resolve() in p.resolve().parents for p in files)


def test_a_known_input_keeps_its_call_id_when_a_namesake_appears():
    """Day 1 lists a/0001.wav (call_id 0001).  Day 2 lists it again beside a new
    b/0001.wav: the listing alone now hashes both, but a/0001.wav must keep 0001 (or it
    would be scored twice, under two ids) and b/0001.wav must not take it."""
    ledger = {"0001": Entry("0001", "a/0001.wav", "e", 1)}
    ids = call_ids(["a/0001.wav", "b/0001.wav"])
    calls = _disambiguate([{"key": k, "call_id": v, "etag": "e", "size": 1} for k, v in ids.items()],
                          ledger)
    by_key = {c["key"]: c["call_id"] for c in calls}
    assert by_key["a/0001.wav"] == "0001"
    assert by_key["b/0001.wav"].startswith("0001-") and by_key["b/0001.wav"] != "0001"
    # and the day after, with b now in the ledger, both keep their ids
    ledger[by_key["b/0001.wav"]] = Entry(by_key["b/0001.wav"], "b/0001.wav", "e", 1)
    again = _disambiguate([{"key": k, "call_id": v, "etag": "e", "size": 1} for k, v in ids.items()],
                          ledger)
    assert {c["key"]: c["call_id"] for c in again} == by_key


# -- whole runs ---------------------------------------------------------------------------

LOCAL_NAMES = {
    # name -> content; nested folders with odd names, the same file name in several folders
    "call-001.wav": GOOD_WAV,
    "c\u0430ll-001.wav": GOOD_WAV,                         # Cyrillic look-alike, real audio
    "day 2/call-001.wav": b"RIFF not really",              # same name, another folder
    "tab\tdir/new\nline.wav": b"\x00" * 64,                # control characters
    "win\\..\\evil.wav": b"garbage",                        # backslashes
    "etc/passwd.wav": b"garbage",
    "caf\u00e9.wav": b"garbage",
    unicodedata.normalize("NFD", "caf\u00e9.wav"): b"garbage",
    "/".join(["d" * 200] * 5) + "/" + "n" * 200 + ".wav": b"garbage",   # 1,210 characters
}
S3_KEYS = {
    "../../escape.wav": b"garbage", "a/../../b.wav": b"garbage", "/etc/passwd.wav": b"garbage",
    "a//b.wav": b"garbage", "./dot.wav": b"garbage", "tab\there.wav": b"garbage",
    "c\u0430ll-001.wav": GOOD_WAV, "call-001.wav": b"garbage",
    LONG + ".wav": GOOD_WAV, LONG + "2.wav": b"garbage", "x?.wav": b"garbage",
    f"x-{hashlib.sha256(b'x?.wav').hexdigest()[:10]}.wav": b"garbage",
}


@pytest.fixture(scope="module")
def runs(s3_server, tmp_path_factory):
    """The job over a local folder and over an S3 prefix of hostile names, each run twice."""
    import ray

    from callcoach.flow import RunConfig, run

    with pytest.MonkeyPatch.context() as mp:
        use_local_s3(mp, s3_server, tmp_path_factory.mktemp("aws"))
        base = tmp_path_factory.mktemp("hostile")
        for name, data in LOCAL_NAMES.items():
            path = base / "in" / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket="hostile")
        for key, data in S3_KEYS.items():
            s3.put_object(Bucket="hostile", Key=f"in/{key}", Body=data)
        ray.shutdown()
        try:
            results = {}
            for label, src, out in (("local", str(base / "in"), str(base / "out")),
                                    ("s3", "s3://hostile/in", "s3://hostile/out")):
                config = RunConfig(input=src, output=out, num_cpus=2)
                results[label] = (run(config), run(config), config)
        finally:
            ray.shutdown()
        yield base, s3, results


def _ledger(store) -> pl.DataFrame:
    import io

    return pl.read_parquet(io.BytesIO(store.read("state/ledger.parquet")))


@pytest.mark.slow
@pytest.mark.parametrize("label", ["local", "s3"])
def test_hostile_names_get_unique_stable_ids_and_nothing_escapes(runs, label):
    base, s3, results = runs
    first, second, config = results[label]
    # keys with a part starting with '.' ('..' included) are never read, but each is
    # counted in the summary and gets a failure row saying why
    names = list(LOCAL_NAMES if label == "local" else S3_KEYS)
    hidden = [k for k in names if any(p.startswith(".") for p in k.split("/"))]
    assert len(hidden) == (0 if label == "local" else 3)
    store = LocalStore(config.output) if label == "local" else S3Store(config.output)

    # every input is one call: scored, or one failure row with a reason
    assert first.calls == len(names) - len(hidden) and first.skipped == len(hidden)
    assert first.scored == 2 and first.failed == len(names) - 2
    ledger = _ledger(store)
    assert ledger.height == len(names)
    assert ledger["call_id"].n_unique() == len(names)
    assert ledger["call_id"].str.to_lowercase().n_unique() == len(names)
    assert all(SAFE_ID.match(c) for c in ledger["call_id"])
    refused = ledger.filter(pl.col("stage") == "key")
    assert refused.height == (2 if label == "local" else 6)
    assert all(r.startswith("input key refused") for r in refused["reason"])
    assert sorted(refused.filter(pl.col("source_key").is_in(hidden))["source_key"]) == sorted(hidden)

    # stable: the second run over the same inputs re-processes nothing, ids unchanged
    assert second.calls == len(names) - len(hidden) and second.unchanged == len(names) - len(hidden)
    assert second.skipped == len(hidden)                 # counted every run, failed once
    assert second.transcribed == 0 and second.failed == 0
    assert _ledger(store).sort("call_id")["call_id"].to_list() == ledger.sort("call_id")["call_id"].to_list()

    # the look-alike and the plain name are two calls, with two transcripts and reports
    scored = ledger.filter(pl.col("status") == "scored")
    assert scored.height == 2
    for cid in scored["call_id"]:
        assert store.exists(f"transcripts/{cid}.json")
        assert any(o.key.endswith(f"/{cid}.json") for o in store.list("reports"))

    # nothing written outside the output prefix
    if label == "local":
        outside = [p for p in base.rglob("*") if p.is_file()
                   and (base / "out") not in p.parents and (base / "in") not in p.parents]
        assert outside == []
        inputs = sorted(p.relative_to(base / "in").as_posix() for p in (base / "in").rglob("*")
                        if p.is_file())
        assert inputs == sorted(LOCAL_NAMES)                 # inputs untouched
    else:
        pages = s3.get_paginator("list_objects_v2").paginate(Bucket="hostile")
        keys = [o["Key"] for p in pages for o in p.get("Contents", ())]
        written = [k for k in keys if not k.startswith("in/")]
        assert written and all(k.startswith("out/") for k in written)
        assert sorted(k for k in keys if k.startswith("in/")) == sorted(f"in/{k}" for k in S3_KEYS)
