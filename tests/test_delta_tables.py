"""The tables as Delta Lake tables on S3 (a real local S3 API: moto's server, in a process
of its own), written by the real job (`rescore` through a local Ray) from stored
transcripts of our sample calls (their scripted turns: no audio, no ASR).

  * a reader querying `calls` in a loop during a rescore with a changed rule set never
    sees a mix of the two rule sets (one commit per table per run);
  * the table's history names the run and rule set of each version; version 0 is still
    readable (time travel);
  * Polars and DuckDB read the tables straight from the S3 API;
  * a writer that read an older version cannot commit over a newer one (conditional put);
  * no row lacks a day: a call without `started_at` takes its recording's last-modified time.
"""

from __future__ import annotations

import json
import threading
from datetime import datetime, timezone
from pathlib import Path

import boto3
import polars as pl
import pytest

from conftest import use_local_s3

from callcoach.flow import RunConfig, run
from callcoach.transcript import Transcript, Turn

REPO = Path(__file__).resolve().parent.parent
SAMPLES = REPO / "samples" / "calls"
OUT = "s3://delta-out/coaching"
MTIME = datetime(2025, 3, 9, 22, 15, tzinfo=timezone.utc)      # the no-start call's recording
STANDARD_RULE = "  handoff:\n    talk_ratio: [0.40, 0.55]"
CHANGED_RULE = "  handoff:\n    talk_ratio: [0.70, 0.90]"
MAX_READS = 5000                                                 # the reader's loop is bounded

pytestmark = pytest.mark.slow


def _transcripts() -> dict[str, Transcript]:
    """8 calls over 4 days and 2 teams from the 4 scripted samples; the last has no start."""
    out = {}
    for k, truth_file in enumerate(sorted(SAMPLES.glob("*.truth.json")) * 2):
        truth = json.loads(truth_file.read_text())
        sidecar = json.loads((SAMPLES / (truth["call_id"] + ".json")).read_text())
        call_id = f"{truth['call_id']}-{k}"
        meta = {"agent_id": f"agt-{k % 3}", "team": ("north", "south")[k % 2],
                "company": sidecar.get("company"),
                "started_at": f"2025-03-0{3 + k % 4}T{9 + k:02d}:00:00+00:00"}
        audio = {"sample_rate": 16000, "channels": 2, "layout": "stereo", "source_key": f"{call_id}.wav"}
        if k == 7:
            del meta["started_at"]
            audio["modified"] = MTIME.timestamp()
        turns = tuple(Turn(t["speaker"], t["start"], t["end"], t["text"]) for t in truth["turns"])
        out[call_id] = Transcript(call_id, truth["duration_s"], turns, language="en",
                                  audio=audio, metadata=meta,
                                  models={"asr": "truth", "diarization": "truth"})
    return out


def _opts(endpoint):
    return {"aws_endpoint_url": endpoint, "aws_access_key_id": "testing",
            "aws_secret_access_key": "testing", "aws_region": "us-east-1", "aws_allow_http": "true"}


@pytest.fixture(scope="module")
def env(s3_process_server, tmp_path_factory):
    import ray

    with pytest.MonkeyPatch.context() as mp:
        use_local_s3(mp, s3_process_server, tmp_path_factory.mktemp("aws"))
        ray.shutdown()
        client = boto3.client("s3")
        client.create_bucket(Bucket="delta-out")
        for call_id, t in _transcripts().items():
            client.put_object(Bucket="delta-out", Key=f"coaching/transcripts/{call_id}.json",
                              Body=t.to_json())
        rules = (REPO / "pipelines" / "callcoach" / "rules" / "default.yaml").read_text()
        assert STANDARD_RULE in rules, "the default rules no longer hold the rule this test changes"
        changed = tmp_path_factory.mktemp("rules") / "changed.yaml"
        changed.write_text(rules.replace(STANDARD_RULE, CHANGED_RULE))
        try:
            yield client, s3_process_server, changed
        finally:
            ray.shutdown()


@pytest.fixture(scope="module")
def backfill(env):
    """Score the stored transcripts, then rescore them with a changed rule set while a
    reader queries the calls table in a loop."""
    client, endpoint, changed = env
    first = run(RunConfig(input="", output=OUT, num_cpus=2), rescore_only=True)
    uri = f"{OUT}/tables/calls"

    def snapshot():
        df = pl.read_delta(uri, storage_options=_opts(endpoint))
        return df.height, tuple(sorted(set(df["ruleset_version"])))

    seen = [snapshot()]                     # before the rescore starts: the old rule set
    stop, errors = threading.Event(), []

    def reader():
        try:
            for _ in range(MAX_READS):
                if stop.is_set():
                    break
                seen.append(snapshot())
        except Exception as exc:            # noqa: BLE001 - reported by the test
            errors.append(exc)

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    second = run(RunConfig(input="", output=OUT, ruleset=str(changed), num_cpus=2), rescore_only=True)
    after = snapshot()
    stop.set()
    thread.join(timeout=120)
    seen.append(after)
    return {"first": first, "second": second, "seen": seen, "errors": errors, "endpoint": endpoint}


def test_reader_during_rescore_never_sees_a_mix(backfill):
    first, second, seen = backfill["first"], backfill["second"], backfill["seen"]
    assert not backfill["errors"], backfill["errors"]
    assert (first.rescored, first.failed) == (8, 0) and (second.rescored, second.failed) == (8, 0)
    old, new = (first.ruleset_version,), (second.ruleset_version,)
    assert old != new
    assert len(seen) >= 3
    # every read: all 8 calls, under one rule set: the old one, then (from some read on) the new
    assert {s for s in seen} <= {(8, old), (8, new)}, sorted(set(seen))
    versions = [s[1] for s in seen]
    assert versions[0] == old and versions[-1] == new
    switch = versions.index(new)
    assert all(v == new for v in versions[switch:])


def test_history_names_runs_and_rule_sets_and_old_versions_stay_readable(env, backfill):
    from deltalake import DeltaTable

    _, endpoint, _ = env
    first, second = backfill["first"], backfill["second"]
    for name in ("calls", "agent_daily", "team_daily", "call_type_daily", "failures",
                 "insights", "recurring_issues", "commitments", "commitments_by_agent", "recognition"):
        dt = DeltaTable(f"{OUT}/tables/{name}", storage_options=_opts(endpoint))
        h = dt.history()
        assert [c["version"] for c in h] == [1, 0], name           # one commit per run
        assert [(c["run_id"], c["ruleset_version"], c["command"]) for c in h] == [
            (second.run_id, second.ruleset_version, "rescore"),
            (first.run_id, first.ruleset_version, "rescore")], name
    before = pl.read_delta(f"{OUT}/tables/calls", version=0, storage_options=_opts(endpoint))
    assert set(before["ruleset_version"]) == {first.ruleset_version} and before.height == 8


def test_polars_and_duckdb_read_the_tables_from_the_s3_api(env, backfill):
    import duckdb
    from deltalake import DeltaTable

    _, endpoint, _ = env
    lazy = pl.scan_delta(f"{OUT}/tables/team_daily", storage_options=_opts(endpoint))
    team_daily = lazy.select("team", "day", "calls", "escalation_rate").sort("day", "team").collect()
    assert team_daily["calls"].sum() == 8 and team_daily.schema["calls"] == pl.Int64
    dataset = DeltaTable(f"{OUT}/tables/calls", storage_options=_opts(endpoint)).to_pyarrow_dataset()
    rows = duckdb.sql("SELECT day, count(*) AS calls, any_value(ruleset_version) AS rules "
                      "FROM dataset GROUP BY day ORDER BY day").fetchall()
    assert sum(r[1] for r in rows) == 8
    assert {r[2] for r in rows} == {backfill["second"].ruleset_version}


def test_no_null_day_and_the_no_start_call_takes_its_recordings_time(env, backfill):
    client, endpoint, _ = env
    calls = pl.read_delta(f"{OUT}/tables/calls", storage_options=_opts(endpoint))
    assert calls["day"].null_count() == 0 and calls.schema["started_at"] == pl.Datetime("us", "UTC")
    row = calls.filter(pl.col("call_id").str.ends_with("-7")).row(0, named=True)
    assert (row["day"], row["day_source"], row["started_at"]) == (MTIME.date(), "object_mtime", MTIME)
    assert set(calls.filter(~pl.col("call_id").str.ends_with("-7"))["day_source"]) == {"sidecar"}
    pages = client.get_paginator("list_objects_v2").paginate(Bucket="delta-out", Prefix="coaching/tables/")
    keys = [o["Key"] for p in pages for o in p.get("Contents", ())]
    assert keys and not any("__HIVE_DEFAULT_PARTITION__" in k for k in keys)
    insights = pl.read_delta(f"{OUT}/tables/insights", storage_options=_opts(endpoint))
    assert insights.filter(pl.col("call_id") == row["call_id"])["day"].to_list() == [MTIME.date()]


def test_a_writer_behind_the_latest_version_is_refused(env, backfill):
    """Two writers of one table: the one that read an older version cannot overwrite the
    newer one (its commit is refused), and no commit ever replaces another's log entry."""
    from botocore.exceptions import ClientError
    from deltalake import DeltaTable, write_deltalake
    from deltalake.exceptions import CommitFailedError

    from callcoach.storage import S3Store
    from callcoach.tables import write_table

    client, endpoint, _ = env
    store, uri = S3Store(OUT), f"{OUT}/tables/race"
    rows = pl.DataFrame({"call_id": ["a", "b"], "day": [MTIME.date()] * 2})
    write_table(store, "race", rows, metadata={"run_id": "writer-1"})             # version 0
    stale = DeltaTable(uri, storage_options=_opts(endpoint))                       # B reads v0
    write_table(store, "race", rows.head(1), metadata={"run_id": "writer-2"})      # A commits v1
    with pytest.raises(CommitFailedError):                                         # B is refused
        write_deltalake(stale, rows.tail(1).to_arrow(), mode="overwrite", partition_by=["day"])
    now = DeltaTable(uri, storage_options=_opts(endpoint))
    assert now.version() == 1 and [c.get("run_id") for c in now.history()] == ["writer-2", "writer-1"]
    assert pl.read_delta(uri, storage_options=_opts(endpoint))["call_id"].to_list() == ["a"]
    # the S3 API refuses a second PUT of an existing log entry when asked to (If-None-Match)
    with pytest.raises(ClientError, match="PreconditionFailed"):
        client.put_object(Bucket="delta-out", Key="coaching/tables/race/_delta_log/00000000000000000001.json",
                          Body=b"{}", IfNoneMatch="*")


def test_dashboards_are_written_beside_the_tables_on_s3(env, backfill):
    client, _, _ = env
    run_id = backfill["second"].run_id
    for key in ("coaching/dashboard.html", f"coaching/runs/{run_id}/dashboard.html"):
        page = client.get_object(Bucket="delta-out", Key=key)["Body"].read().decode()
        assert run_id in page and 'id="escalation-rate"' in page
