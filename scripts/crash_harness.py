"""Crash-safety harness: kill the job with SIGKILL at random points, re-run it, and check
that the outputs equal those of an uninterrupted run.

The job runs as a subprocess (``python -m callcoach.cli rescore --output ...``) over an
archive of stored transcripts synthesised from the four samples' truth turns (distinct
call_ids, agents, teams and days), on a local folder or on a real local S3 API (moto's
server, started by this script).  No ASR runs, so a trial takes seconds, yet the whole
Ray graph, the storage seam, scoring, the ledger and the tables are exercised.

Trials (seeded, so a failing trial can be replayed with the same --seed):
  driver    SIGKILL the driver at a random point (before any row, after k of N rows, or
            while it rebuilds the tables and commits the ledger), sometimes twice in a row,
            then re-run to completion;
  worker    SIGKILL a Ray worker of the Score pool ('MapWorker(MapBatches(Score))') mid-run; the
            run itself must complete with every call scored (Ray restarts the actor and
            retries its task).

Compared against the reference run, per trial:
  * every transcript and report (JSON and HTML) byte for byte;
  * every table file as a multiset of rows, the calls table without duplicate call_ids;
  * the ledger snapshot rows (run_id left out: it names the run), no pending entries left;
  * the set of visible keys; and no temp or hidden file left behind anywhere.
Run summaries (``runs/``) differ by nature (run_id, wall time, counters) and are left out.
A run whose Ray failed to start at all (an overloaded machine) is started again and listed
in the trial's ``ray_restarts``; it wrote nothing and proves nothing either way.

    .venv/bin/python scripts/crash_harness.py --trials 12 --seed 1 [--store local|s3|both]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import queue
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
if str(REPO / "pipelines") not in sys.path:
    sys.path.insert(0, str(REPO / "pipelines"))   # the callcoach package of this tree

SAMPLES = REPO / "samples" / "calls"
SCORE_WORKER = "MapWorker(MapBatches(Score))"


# -- the archive ------------------------------------------------------------------------

def build_archive(n_calls: int = 40, seed: int = 0) -> dict[str, bytes]:
    """``transcripts/<call_id>.json`` for ``n_calls`` calls made from the samples' truth
    turns: each with its own call_id, agent, team and day, some shortened by a turn or
    two so the reports differ.  Each is redacted and carries its features, as the speech
    stage stores them, so the re-score rewrites no transcript and computes no features."""
    import dataclasses

    from callcoach.coaching.features import turn_features
    from callcoach.pii import PiiConfig, redact_transcript
    from callcoach.transcript import Transcript, Turn, Word

    rng = random.Random(seed)
    truths = sorted(SAMPLES.glob("*.truth.json"))
    templates = [json.loads(p.read_text()) for p in truths]
    cache: dict[tuple[int, int], Transcript] = {}
    out: dict[str, bytes] = {}
    for i in range(n_calls):
        t_idx = i % len(templates)
        drop = rng.choice((0, 0, 1, 2))
        if (t_idx, drop) not in cache:
            truth = templates[t_idx]
            turns = []
            for t in truth["turns"][: len(truth["turns"]) - drop]:
                words = t["text"].split()
                step = (t["end"] - t["start"]) / max(1, len(words))
                turns.append(Turn(t["speaker"], t["start"], t["end"], t["text"],
                                  tuple(Word(w, t["start"] + k * step, t["start"] + (k + 1) * step)
                                        for k, w in enumerate(words))))
            base = Transcript("template", float(truth["duration_s"]), tuple(turns),
                              models={"asr": "truth", "diarization": "truth"}, language="en",
                              roles={"confidence": 1.0, "method": "sidecar"})
            base, _ = redact_transcript(base, PiiConfig())   # stored transcripts are redacted
            cache[(t_idx, drop)] = dataclasses.replace(base, features=turn_features(base))
        call_id = f"call-{i:04d}"
        day = 1 + rng.randrange(5)
        tr = dataclasses.replace(
            cache[(t_idx, drop)], call_id=call_id,
            audio={"source_key": f"2026/11/{day:02d}/{call_id}.wav", "etag": f"etag-{i}",
                   "size": 1000 + i, "sha256": f"{i:064x}", "channels": 1},
            metadata={"agent_id": f"agt-{1 + rng.randrange(6):03d}",
                      "team": rng.choice(("team-north", "team-south")),
                      "started_at": f"2026-11-{day:02d}T{8 + rng.randrange(9):02d}:00:00+00:00"})
        out[f"transcripts/{call_id}.json"] = tr.to_json()
    return out


def changed_ruleset(path: Path) -> Path:
    """The default rule set under a new human version: every call re-scores."""
    text = (REPO / "pipelines" / "callcoach" / "rules" / "default.yaml").read_text()
    new, n = re.subn(r'^version: "([^"]+)"', r'version: "\1.harness"', text, count=1, flags=re.M)
    assert n == 1, "default.yaml has no version line"
    path.write_text(new)
    return path


# -- where the outputs live -------------------------------------------------------------

class LocalTarget:
    def __init__(self, root: Path):
        self.root = root

    @property
    def uri(self) -> str:
        return str(self.root)

    def seed(self, archive: dict[str, bytes]) -> None:
        shutil.rmtree(self.root, ignore_errors=True)
        for key, data in archive.items():
            path = self.root / key
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)

    def objects(self) -> tuple[dict[str, bytes], list[str]]:
        """(visible key -> bytes, litter) where litter is every hidden or temp file."""
        found, litter = {}, []
        for path in sorted(self.root.rglob("*")):
            if not path.is_file():
                continue
            key = path.relative_to(self.root).as_posix()
            if any(p.startswith(".") for p in key.split("/")) or key.endswith(".tmp"):
                litter.append(key)
            else:
                found[key] = path.read_bytes()
        return found, litter

    def env(self) -> dict:
        return {}


class S3Target:
    def __init__(self, endpoint: str, bucket: str, prefix: str):
        import boto3

        self.endpoint, self.bucket, self.prefix = endpoint, bucket, prefix
        self.client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                                   aws_access_key_id="testing", aws_secret_access_key="testing")

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    def _keys(self) -> list[str]:
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=self.prefix + "/")
        return sorted(o["Key"] for p in pages for o in p.get("Contents", ()))

    def seed(self, archive: dict[str, bytes]) -> None:
        for key in self._keys():
            self.client.delete_object(Bucket=self.bucket, Key=key)
        for key, data in archive.items():
            self.client.put_object(Bucket=self.bucket, Key=f"{self.prefix}/{key}", Body=data)

    def objects(self) -> tuple[dict[str, bytes], list[str]]:
        found, litter = {}, []
        for full in self._keys():
            key = full[len(self.prefix) + 1:]
            if any(p.startswith(".") for p in key.split("/")) or key.endswith(".tmp"):
                litter.append(key)
            else:
                found[key] = self.client.get_object(Bucket=self.bucket, Key=full)["Body"].read()
        return found, litter

    def env(self) -> dict:
        return {"AWS_ENDPOINT_URL": self.endpoint, "AWS_ACCESS_KEY_ID": "testing",
                "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
                "AWS_REGION": "us-east-1"}


# -- normalising outputs for comparison -------------------------------------------------

def delta_files(objects: dict[str, bytes]) -> dict[str, list[str]]:
    """{table prefix: keys of its live data files} for every Delta table among ``objects``,
    from a replay of its log (files of older versions, kept for time travel, are not live)."""
    from urllib.parse import unquote

    logs: dict[str, list[str]] = {}
    for key in objects:
        m = re.match(r"(tables/[^/]+)/_delta_log/(\d{20})\.json$", key)
        if m:
            logs.setdefault(m.group(1), []).append(key)
    live = {}
    for table, keys in logs.items():
        files: set[str] = set()
        for k in sorted(keys):
            for line in objects[k].decode().splitlines():
                if not line.strip():
                    continue
                action = json.loads(line)
                if "add" in action:
                    files.add(unquote(action["add"]["path"]))
                elif "remove" in action:
                    files.discard(unquote(action["remove"]["path"]))
        live[table] = sorted(f"{table}/{p}" for p in files)
    return live


def _rows(objects: dict[str, bytes], keys: list[str]):
    """(columns, sorted rows) of Parquet files, each row with its partition folder."""
    import polars as pl

    columns, rows = (), []
    for key in keys:
        df = pl.read_parquet(io.BytesIO(objects[key]))
        part = "/".join(p for p in key.split("/")[2:-1])
        columns = tuple(df.columns)
        rows += [(part, *(repr(v) for v in r)) for r in df.iter_rows()]
    return columns, tuple(sorted(rows))


def normalise(objects: dict[str, bytes]) -> dict[str, object]:
    """What must be identical between two runs, per key.  Parquet files become sorted
    row lists (a multiset of rows); the ledger loses its run_id column; a Delta table is
    the rows of its live files (file names and log entries carry ids and times); the
    dashboards, which name the run, are left out like the run summaries."""
    import polars as pl

    out: dict[str, object] = {}
    tables = delta_files(objects)
    for table, keys in tables.items():
        out[table + "/"] = _rows(objects, keys)
    for key, data in objects.items():
        if key.startswith("runs/") or key == "dashboard.html":
            continue
        if any(key.startswith(t + "/") for t in tables):
            continue
        if key.endswith(".parquet"):
            df = pl.read_parquet(io.BytesIO(data))
            if key == "state/ledger.parquet":
                df = df.drop("run_id")
            rows = sorted(tuple(repr(v) for v in r) for r in df.iter_rows())
            out[key] = (tuple(df.columns), tuple(rows))
        else:
            out[key] = data
    return out


def check_invariants(objects: dict[str, bytes]) -> list[str]:
    """Problems a finished run's outputs must never have, reference or not."""
    import polars as pl

    problems = []
    ids: list[str] = []
    live = delta_files(objects).get("tables/calls")
    for key, data in objects.items():
        if key.startswith("tables/calls/") and key.endswith(".parquet") \
                and (live is None or key in live):
            ids += pl.read_parquet(io.BytesIO(data))["call_id"].to_list()
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    if dupes:
        problems.append(f"calls table holds duplicate call_ids: {dupes[:5]}")
    pending = [k for k in objects if k.startswith("state/entries/")]
    if pending:
        problems.append(f"{len(pending)} ledger entries left pending after a finished run")
    return problems


def diff(reference: dict[str, bytes], got: dict[str, bytes]) -> list[str]:
    ref, new = normalise(reference), normalise(got)
    problems = []
    for key in sorted(set(ref) - set(new)):
        problems.append(f"missing: {key}")
    for key in sorted(set(new) - set(ref)):
        problems.append(f"unexpected: {key}")
    for key in sorted(set(ref) & set(new)):
        if ref[key] != new[key]:
            problems.append(f"differs: {key}")
    return problems


# -- running the job --------------------------------------------------------------------

@dataclass
class Job:
    proc: subprocess.Popen
    lines: "queue.Queue[tuple[float, str]]" = field(default_factory=queue.Queue)
    log: list[str] = field(default_factory=list)
    done: bool = False          # its output has ended

    def next_line(self, timeout: float) -> str | None:
        """The next stdout line (None at end of output or after ``timeout`` s)."""
        try:
            _, line = self.lines.get(timeout=timeout)
        except queue.Empty:
            return None
        if line is None:
            self.done = True
            return None
        self.log.append(line)
        return line


def start(target, workdir: Path, ruleset: Path | None, tag: str) -> Job:
    cmd = [sys.executable, "-m", "callcoach.cli", "rescore", "--output", target.uri]
    if ruleset:
        cmd += ["--ruleset", str(ruleset)]
    env = dict(os.environ, PYTHONUNBUFFERED="1", RAY_DEDUP_LOGS="0", **target.env())
    stderr = open(workdir / f"{tag}.stderr", "wb")
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=stderr,
                            text=True, start_new_session=True)
    stderr.close()
    job = Job(proc)

    def pump():
        for line in proc.stdout:
            job.lines.put((time.monotonic(), line.rstrip("\n")))
        job.lines.put((time.monotonic(), None))

    threading.Thread(target=pump, daemon=True).start()
    return job


# Process trees from /proc (Linux), so the harness needs nothing beyond the project.

def _ppid(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[1])


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(
            "utf-8", "replace").strip()
    except OSError:
        return ""


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            parent = _ppid(int(entry.name))
            if parent is not None:
                children.setdefault(parent, []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), ()):
            out.append(child)
            todo.append(child)
    return out


def reap(pids: list[int], grace_s: float = 30.0) -> list[str]:
    """Wait for processes this harness started (a killed driver's Ray processes) to exit,
    then SIGKILL, by pid, those still alive.  Returns the titles of those it had to kill."""
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline and any(alive(p) for p in pids):
        time.sleep(0.2)
    left = [p for p in pids if alive(p)]
    titles = [cmdline(p)[:60] for p in left]
    for p in left:
        try:
            os.kill(p, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return titles


def sigkill_driver(job: Job) -> list[str]:
    """SIGKILL the driver alone (its Ray processes are left to notice), then reap them."""
    pids = descendants(job.proc.pid)
    job.proc.send_signal(signal.SIGKILL)
    job.proc.wait()
    return reap(pids)


def finish(job: Job, timeout_s: float = 600) -> int:
    while not job.done and job.next_line(timeout_s) is not None:
        pass
    return job.proc.wait(timeout=60)


# Ray's own start-up can time out on an overloaded machine ("The current node timed out
# during startup"): that run never started, so it is started again (and counted), never
# taken for a crash-safety failure.
RAY_STARTUP_FAILED = "timed out during startup"


def ray_start_failed(workdir: Path, tag: str, code: int | None) -> bool:
    if code != 1:
        return False
    err = (workdir / f"{tag}.stderr").read_text(errors="replace")
    return RAY_STARTUP_FAILED in err


def run_to_end(target, workdir: Path, ruleset: Path | None, tag: str,
               restarts: list[str]) -> int:
    """Run the job to completion; start it again if Ray itself failed to start."""
    for attempt in range(3):
        name = tag if attempt == 0 else f"{tag}-again{attempt}"
        code = finish(start(target, workdir, ruleset, name))
        if not ray_start_failed(workdir, name, code):
            return code
        restarts.append(name)
    return code


def progress_count(line: str | None) -> int | None:
    if line and line.startswith("[") and "/" in line.split("]", 1)[0]:
        return int(line[1:].split("/", 1)[0])
    return None


@dataclass
class Timing:
    """Where the reference run spent its time (to place kills; nothing is asserted on it)."""
    to_first_row: float = 5.0
    to_exit_after_rows: float = 2.0
    rows: int = 0


def run_reference(target, archive, workdir: Path, ruleset: Path | None) -> tuple[dict, Timing]:
    target.seed(archive)
    if ruleset:   # the archive was scored with the default rules before the change
        code = run_to_end(target, workdir, None, "reference-base", [])
        assert code == 0, f"reference base run exited {code}"
    for attempt in range(3):      # a run whose Ray failed to start wrote nothing: go again
        name = "reference" if attempt == 0 else f"reference-again{attempt}"
        t0 = time.monotonic()
        job = start(target, workdir, ruleset, name)
        timing = Timing()
        first = last = None
        while True:
            line = job.next_line(600)
            if line is None:
                break
            if progress_count(line) is not None:
                timing.rows += 1
                last = time.monotonic()
                first = first or last
        code = job.proc.wait()
        end = time.monotonic()
        if not ray_start_failed(workdir, name, code):
            break
    if code != 0:
        raise SystemExit(f"reference run exited {code}: see {workdir}/{name}.stderr")
    timing.to_first_row = (first or end) - t0
    timing.to_exit_after_rows = end - (last or end)
    objects, litter = target.objects()
    problems = check_invariants(objects) + [f"litter: {k}" for k in litter]
    if problems:
        raise SystemExit(f"reference run is itself broken: {problems}")
    return objects, timing


PHASES = ("startup", "rows", "rows", "finish")


def driver_trial(target, archive, workdir, ruleset, timing: Timing, rng: random.Random,
                 tag: str, phases: tuple[str, ...] = PHASES) -> dict:
    """Seed, run with one or two driver kills at random points, finish, return what happened."""
    target.seed(archive)
    restarts: list[str] = []
    if ruleset:
        assert run_to_end(target, workdir, None, f"{tag}-base", restarts) == 0
    kills = []
    for attempt in range(rng.choice((1, 1, 2))):
        phase = rng.choice(phases)
        job = start(target, workdir, ruleset, f"{tag}-kill{attempt}")
        if phase == "startup":
            time.sleep(rng.uniform(0, timing.to_first_row))
            seen = 0
        else:
            wanted = rng.randrange(max(1, timing.rows)) + 1 if phase == "rows" else timing.rows
            seen = 0
            while seen < wanted:
                line = job.next_line(300)
                if line is None:
                    break
                if progress_count(line) is not None:
                    seen += 1
            # "finish": inside the reference's window from the last row to exit (tables,
            # ledger commit, run summary), kept short of its end so the kill lands in it
            delay = rng.uniform(0, 0.3) if phase == "rows" else \
                rng.uniform(0, 0.8 * timing.to_exit_after_rows)
            time.sleep(delay)
        exited = job.proc.poll()
        reaped = sigkill_driver(job)
        kills.append({"phase": phase, "rows_seen": seen,
                      "already_exited": exited is not None, "reaped": reaped})
    code = run_to_end(target, workdir, ruleset, f"{tag}-final", restarts)
    objects, litter = target.objects()
    return {"kind": "driver", "kills": kills, "exit": code, "objects": objects, "litter": litter,
            "ray_restarts": restarts}


def worker_trial(target, archive, workdir, ruleset, timing: Timing, rng: random.Random,
                 tag: str, phases=None) -> dict:
    """Seed, start a run, SIGKILL one Score worker after k rows; the run must complete."""
    target.seed(archive)
    restarts: list[str] = []
    if ruleset:
        assert run_to_end(target, workdir, None, f"{tag}-base", restarts) == 0
    name = f"{tag}-run"
    job = start(target, workdir, ruleset, name)
    wanted = rng.randrange(max(1, timing.rows - 2)) + 1
    seen, killed = 0, None
    while killed is None:
        line = job.next_line(0.05)
        if progress_count(line) is not None:
            seen += 1
        if job.proc.poll() is not None:
            finish(job)
            if ray_start_failed(workdir, name, job.proc.returncode) and len(restarts) < 2:
                restarts.append(name)
                name = f"{tag}-run-again{len(restarts)}"
                job = start(target, workdir, ruleset, name)
                continue
            break
        if seen < wanted:
            continue
        for pid in descendants(job.proc.pid):
            title = cmdline(pid)
            if SCORE_WORKER in title:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    continue
                killed = {"pid": pid, "title": title[:60], "rows_seen": seen}
                break
    code = finish(job)
    objects, litter = target.objects()
    return {"kind": "worker", "kills": [killed] if killed else [], "exit": code,
            "objects": objects, "litter": litter, "ray_restarts": restarts}


def run_trials(target, n_trials: int, seed: int, workdir: Path, n_calls: int = 40,
               scenario: str = "fresh", worker_every: int = 4, log=print,
               phases: tuple[str, ...] = PHASES) -> list[dict]:
    """Reference run, then ``n_trials`` trials; returns one outcome dict per trial
    (``ok`` plus the problems found)."""
    archive = build_archive(n_calls, seed)
    ruleset = changed_ruleset(workdir / "rules-next.yaml") if scenario == "rerules" else None
    reference, timing = run_reference(target, archive, workdir, ruleset)
    log(f"reference: {timing.rows} rows, {len(reference)} objects "
        f"(first row after {timing.to_first_row:.1f} s, exit {timing.to_exit_after_rows:.1f} s "
        f"after the last)")
    outcomes = []
    rng = random.Random(seed)
    for i in range(n_trials):
        kind_worker = worker_every and i % worker_every == worker_every - 1
        trial = (worker_trial if kind_worker else driver_trial)(
            target, archive, workdir, ruleset, timing, rng, f"trial{i:02d}", phases)
        problems = []
        if trial["exit"] != 0:
            problems.append(f"final run exited {trial['exit']}")
        if trial["kind"] == "worker" and not trial["kills"]:
            problems.append("no Score worker was found to kill")
        problems += check_invariants(trial["objects"])
        problems += [f"litter: {k}" for k in trial["litter"]]
        problems += diff(reference, trial["objects"])
        outcome = {"trial": i, "kind": trial["kind"], "kills": trial["kills"],
                   "ray_restarts": trial["ray_restarts"], "ok": not problems,
                   "problems": problems[:20]}
        outcomes.append(outcome)
        log(json.dumps(outcome))
    return outcomes


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=12, help="trials per store")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--calls", type=int, default=40)
    ap.add_argument("--store", choices=("local", "s3", "both"), default="both")
    ap.add_argument("--scenario", choices=("fresh", "rerules"), default="fresh",
                    help="fresh: first scoring of the archive; rerules: re-score with a "
                         "changed rule set over a scored archive (old tables present)")
    ap.add_argument("--worker-every", type=int, default=4,
                    help="every Nth trial kills a Score worker instead of the driver (0: never)")
    ap.add_argument("--keep", action="store_true", help="keep the work folder")
    args = ap.parse_args(argv)

    workdir = Path(tempfile.mkdtemp(prefix="crash-harness-"))
    results = {}
    server = None
    try:
        stores = ("local", "s3") if args.store == "both" else (args.store,)
        for store in stores:
            if store == "local":
                target = LocalTarget(workdir / "out")
            else:
                import logging

                import boto3
                from moto.server import ThreadedMotoServer

                logging.getLogger("werkzeug").setLevel(logging.WARNING)   # no request lines
                server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
                server.start()
                host, port = server.get_host_and_port()
                endpoint = f"http://{host}:{port}"
                boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                             aws_access_key_id="testing", aws_secret_access_key="testing"
                             ).create_bucket(Bucket="crash")
                target = S3Target(endpoint, "crash", "out")
            print(f"== {store}: {args.trials} trials, seed {args.seed}, {args.calls} calls, "
                  f"scenario {args.scenario}", flush=True)
            results[store] = run_trials(target, args.trials, args.seed, workdir, args.calls,
                                        args.scenario, args.worker_every,
                                        log=lambda s: print(s, flush=True))
    finally:
        if server:
            server.stop()
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            print(f"work folder: {workdir}")
    total = sum(len(v) for v in results.values())
    bad = [(s, o["trial"]) for s, v in results.items() for o in v if not o["ok"]]
    print(json.dumps({"trials": total, "passed": total - len(bad), "failed": bad}))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
