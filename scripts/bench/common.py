"""Shared helpers for the benchmarks: machine facts, process-tree memory sampling, tables,
result files and a synthetic archive of stored transcripts.

Nothing here changes the pipeline: benchmarks call the package's public functions and,
where a phase must be timed, wrap functions from the outside.
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import random
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

ROOT = Path(__file__).resolve().parents[2]
OUT = Path(__file__).resolve().parent / "out"
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
if str(ROOT / "pipelines") not in sys.path:
    sys.path.insert(0, str(ROOT / "pipelines"))   # the callcoach package of this tree
os.environ.setdefault("PYANNOTE_METRICS_ENABLED", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


# -- machine --------------------------------------------------------------------------------

def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _ram_gib() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 1024 / 1024
    except OSError:
        pass
    return 0.0


def versions(names: Sequence[str] = ("ray", "polars", "numpy", "faster-whisper", "ctranslate2",
                                     "whisperx", "torch", "torchaudio", "pyannote.audio",
                                     "onnxruntime", "resemblyzer")) -> dict[str, str]:
    import importlib.metadata as md

    out = {}
    for n in names:
        try:
            out[n] = md.version(n)
        except md.PackageNotFoundError:
            out[n] = "-"
    return out


def git_rev() -> str:
    try:
        rev = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "pipelines"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return rev + ("+dirty(pipelines)" if dirty else "")
    except Exception:
        return "?"


def machine() -> dict[str, Any]:
    return {"cpu": _cpu_model(), "cores": os.cpu_count(), "ram_gib": round(_ram_gib(), 1),
            "python": platform.python_version(), "os": platform.platform(),
            "git": git_rev(), "versions": versions()}


def loadavg() -> str:
    try:
        return "/".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "?"


def timed(fn: Callable, acc: dict[str, float], label: str) -> Callable:
    """``fn`` wrapped so every call adds its wall time to ``acc[label]`` (how benchmarks
    time a pipeline phase from the outside, without changing the pipeline)."""
    def wrapper(*a, **k):
        t0 = time.perf_counter()
        try:
            return fn(*a, **k)
        finally:
            acc[label] = acc.get(label, 0.0) + time.perf_counter() - t0
    return wrapper


def command_line() -> str:
    return " ".join([".venv/bin/python", "-m", sys.modules["__main__"].__spec__.name
                     if getattr(sys.modules["__main__"], "__spec__", None) else sys.argv[0]]
                    + sys.argv[1:])


# -- results ---------------------------------------------------------------------------------

def save_result(name: str, doc: dict) -> Path:
    OUT.mkdir(parents=True, exist_ok=True)
    doc = {"benchmark": name, "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
           "machine": machine(), **doc}
    path = OUT / f"{name}.json"
    path.write_text(json.dumps(doc, indent=1, default=str))
    return path


def md_table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in rows:
        lines.append("| " + " | ".join(str(c) for c in r) + " |")
    return "\n".join(lines)


def verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else ("met" if ok else "NOT met")


def small_png(fig, name: str) -> Path:
    """Save a figure small (the out folder is committed)."""
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"{name}.png"
    fig.savefig(path, dpi=80, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return path


# -- process-tree memory ---------------------------------------------------------------------

def _psutil():
    try:
        import psutil  # noqa: F401
    except ImportError:
        # Ray vendors psutil; importing ray puts its third-party folder on sys.path.
        import ray  # noqa: F401
        import psutil  # noqa: F401
    return psutil


def _pss_kib(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def classify(cmdline: str, pid: int, root: int) -> str:
    if pid == root:
        return "driver"
    if "ray::" in cmdline or "default_worker.py" in cmdline:
        return "worker"
    if any(s in cmdline for s in ("raylet", "gcs_server", "dashboard", "log_monitor",
                                  "monitor.py", "runtime_env", "ray/_private")):
        return "ray_system"
    return "other"


class TreeSampler:
    """Samples RSS (and PSS) of a process and all its descendants every ``interval`` s.

    Keeps per-sample totals by class (driver, worker, ray_system, other) and the peak RSS
    of every process seen, so both the peak of the sum and the largest single process are
    known.  RSS double-counts shared pages (the Ray object store is shared memory); PSS
    splits them, so the PSS sum is the better figure for "how much RAM does this take".
    """

    def __init__(self, root_pid: int, interval: float = 0.2, pss: bool = True):
        self.root = root_pid
        self.interval = interval
        self.pss = pss
        self.samples: list[dict[str, float]] = []
        self.peak_by_pid: dict[int, tuple[str, float, str]] = {}
        self.cpu_by_pid: dict[int, tuple[str, float]] = {}   # last user+sys seconds seen
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self.t0 = 0.0

    def __enter__(self):
        self.t0 = time.perf_counter()
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    def _loop(self):
        ps = _psutil()
        names: dict[int, tuple[str, str]] = {}
        while not self._stop.is_set():
            t = time.perf_counter() - self.t0
            try:
                root = ps.Process(self.root)
                procs = [root] + root.children(recursive=True)
            except ps.Error:
                break
            s = {"t": t, "driver": 0.0, "worker": 0.0, "ray_system": 0.0, "other": 0.0,
                 "worker_max": 0.0, "pss_total": 0.0, "rss_total": 0.0, "n_workers": 0}
            for p in procs:
                try:
                    if p.pid not in names:
                        cmd = " ".join(p.cmdline())
                        names[p.pid] = (classify(cmd, p.pid, self.root), cmd[:120])
                    cls, cmd = names[p.pid]
                    if cls == "other" and "ray::" in " ".join(p.cmdline()):
                        cls = "worker"   # a worker renames itself once it has a task
                        names[p.pid] = (cls, cmd)
                    rss = p.memory_info().rss / 2**20
                    ct = p.cpu_times()
                    self.cpu_by_pid[p.pid] = (cls, ct.user + ct.system)
                except ps.Error:
                    continue
                s[cls] += rss
                s["rss_total"] += rss
                if cls == "worker":
                    s["worker_max"] = max(s["worker_max"], rss)
                    s["n_workers"] += 1
                if self.pss:
                    pss = _pss_kib(p.pid)
                    if pss is not None:
                        s["pss_total"] += pss / 1024
                prev = self.peak_by_pid.get(p.pid)
                if prev is None or rss > prev[1]:
                    self.peak_by_pid[p.pid] = (cls, rss, cmd)
            self.samples.append(s)
            self._stop.wait(self.interval)

    def summary(self) -> dict[str, float]:
        def peak(key):
            return max((s[key] for s in self.samples), default=0.0)

        return {"samples": len(self.samples),
                "driver_peak_mb": peak("driver"),
                "workers_sum_peak_mb": peak("worker"),
                "workers_max_peak_mb": max((v[1] for v in self.peak_by_pid.values() if v[0] == "worker"),
                                           default=0.0),
                "ray_system_peak_mb": peak("ray_system"),
                "tree_rss_peak_mb": peak("rss_total"),
                "tree_pss_peak_mb": peak("pss_total"),
                "max_workers_alive": int(peak("n_workers")),
                "cpu_s_by_class": self.cpu_by_class()}

    def cpu_by_class(self) -> dict[str, float]:
        """CPU seconds (user+sys) each class of process used while sampled (last sample:
        work done in the final 0.2 s of a process is missed)."""
        out: dict[str, float] = {}
        for cls, cpu in self.cpu_by_pid.values():
            out[cls] = round(out.get(cls, 0.0) + cpu, 2)
        out["total"] = round(sum(v for k, v in out.items()), 2)
        return out


# -- a child process that runs the pipeline, timed from the outside ------------------------------

def run_child(args: list[str], sample: bool = False, timeout: float = 3600,
              env: dict | None = None, pyspy: bool = False) -> dict:
    """Run ``python -m scripts.bench._child ARGS`` (optionally sampling its process tree,
    and optionally profiling the whole tree with py-spy: driver and Ray workers);
    returns the child's JSON result plus ``process_wall_s`` and, if sampled, ``memory``,
    and with ``pyspy`` a ``profile`` (see parse_pyspy)."""
    import tempfile

    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as fh:
        result_path = fh.name
    cmd = [sys.executable, "-m", "scripts.bench._child", "--result", result_path, *args]
    full_env = dict(os.environ, **(env or {}))
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=str(ROOT), env=full_env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    sampler = TreeSampler(proc.pid) if sample else None
    if sampler:
        sampler.__enter__()
    spy = None
    spy_out = result_path + ".pyspy.txt"
    if pyspy:
        exe = Path(sys.executable).parent / "py-spy"
        if exe.is_file():
            spy = subprocess.Popen([str(exe), "record", "--pid", str(proc.pid), "--subprocesses",
                                    "--nonblocking", "--rate", "20", "--format", "raw", "-o", spy_out],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        out, _ = proc.communicate(timeout=timeout)
    finally:
        if sampler:
            sampler.__exit__(None, None, None)
    wall = time.perf_counter() - t0
    profile = None
    if spy:
        try:
            spy.wait(60)
        except subprocess.TimeoutExpired:
            spy.terminate()
        if Path(spy_out).is_file():
            profile = parse_pyspy(Path(spy_out).read_text(errors="replace"), proc.pid)
            os.unlink(spy_out)
    if proc.returncode not in (0, 3):
        raise RuntimeError(f"child failed ({proc.returncode}): {' '.join(cmd)}\n{out[-4000:]}")
    doc = json.loads(Path(result_path).read_text())
    os.unlink(result_path)
    doc["process_wall_s"] = wall
    doc["log_tail"] = out[-1500:]
    if profile:
        doc["profile"] = profile
    if sampler:
        doc["memory"] = sampler.summary()
        doc["memory_series"] = [(round(s["t"], 2), round(s["driver"], 1), round(s["worker"], 1),
                                 round(s["ray_system"], 1), round(s["pss_total"], 1))
                                for s in sampler.samples]
    return doc


def parse_pyspy(text: str, root_pid: int, top: int = 15) -> dict:
    """py-spy raw (collapsed) output of a process tree -> per process kind: samples,
    top functions by inclusive and by own samples.  Kinds: driver, or the Ray worker's
    title (``ray::MapWorker(MapBatches(Score))``...).  py-spy samples busy threads only, so a
    share is a share of the CPU time that process spent in Python frames."""
    import re

    records, buf = [], ""
    for line in text.splitlines():
        buf = f"{buf}\n{line}" if buf else line
        m = re.search(r" (\d+)$", buf)
        if m:
            records.append((buf[: m.start()], int(m.group(1))))
            buf = ""
    kinds: dict[str, dict] = {}
    for stack, n in records:
        # with --subprocesses a stack starts with the chain of processes, outermost first
        m, rest = None, stack
        while True:
            mm = re.match(r'process (\d+):"(.*?)";', rest, re.S)
            if not mm:
                break
            m, rest = mm, rest[mm.end():]
        if m:
            pid, title = int(m.group(1)), m.group(2)
            frames = rest.split(";")
            if pid == root_pid:
                kind = "driver"
            elif title.startswith("ray::") or "default_worker.py" in title:
                kind = "ray workers"
            else:
                kind = "other: " + title[:60]
        else:
            frames = stack.split(";")
            kind = "driver"
        k = kinds.setdefault(kind, {"samples": 0, "incl": {}, "self": {}, "pids": set()})
        if m:
            k["pids"].add(pid)
        k["samples"] += n
        seen = set()
        for f in frames:
            name = re.sub(r" \((.*/)?(site-packages/)?([^/]*?):\d+\)$", r" (\3)", f)
            if name not in seen:
                k["incl"][name] = k["incl"].get(name, 0) + n
                seen.add(name)
        if frames:
            leaf = re.sub(r" \((.*/)?(site-packages/)?([^/]*?):\d+\)$", r" (\3)", frames[-1])
            k["self"][leaf] = k["self"].get(leaf, 0) + n
    out = {}
    for kind, k in kinds.items():
        tot = k["samples"] or 1
        out[kind] = {"samples": k["samples"], "processes": len(k["pids"]),
                     "top_inclusive": [(f, c, round(c / tot, 3)) for f, c in
                                       sorted(k["incl"].items(), key=lambda kv: -kv[1])[:top * 6]],
                     "top_self": [(f, c, round(c / tot, 3)) for f, c in
                                  sorted(k["self"].items(), key=lambda kv: -kv[1])[:top]]}
    return out


# -- a synthetic archive of stored transcripts -------------------------------------------------

def _pool():
    from scripts.bench_rescore import sentence_pool

    pool = sentence_pool()
    return {"agent": [p for p in pool if p[0] == "agent"],
            "customer": [p for p in pool if p[0] == "customer"]}


def _with_words(tr, rng: random.Random):
    """Give each turn word timings (real transcripts carry them: they are most of the
    JSON a rescore reads)."""
    from callcoach.transcript import Turn, Word

    turns = []
    for t in tr.turns:
        ws = t.text.split()
        step = (t.end - t.start) / max(len(ws), 1)
        words = tuple(Word(w, round(t.start + k * step, 3), round(t.start + (k + 0.8) * step, 3),
                           round(rng.uniform(0.6, 1.0), 3)) for k, w in enumerate(ws))
        turns.append(Turn(t.speaker, t.start, t.end, t.text, words))
    return dataclasses.replace(tr, turns=tuple(turns))


def seed_archive(folder: Path, n: int, seed: int = 11, ruleset_version: str = "old-00000000",
                 progress: bool = False) -> dict:
    """Write ``n`` stored transcripts (as the speech stage writes them: redacted, with word
    timings, features and source info) and a ledger that names an older rule set, so
    ``run(..., rescore_only=True)`` re-scores all of them.  Returns facts about the archive."""
    from callcoach import ledger as ledger_mod
    from callcoach.coaching.features import features_batch, features_valid
    from callcoach.planning import speech_fingerprint
    from callcoach.ledger import Entry
    from callcoach.pii import PiiConfig, redact_transcript
    from callcoach.speech.stage import SpeechConfig
    from callcoach.storage import open_store
    from scripts.bench_rescore import synth_call

    t0 = time.perf_counter()
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "transcripts").mkdir(exist_ok=True)
    rng = random.Random(seed)
    by_speaker = _pool()
    pii = PiiConfig()
    fp = speech_fingerprint(SpeechConfig())
    ledger: dict[str, Entry] = {}
    sizes = 0
    recomputed = 0
    chunk = 500
    for c0 in range(0, n, chunk):
        batch = []
        for i in range(c0, min(n, c0 + chunk)):
            tr, feats = synth_call(i, rng, by_speaker)
            tr = _with_words(tr, rng)
            key = f"2026/11/{(i % 28) + 1:02d}/{tr.call_id}.wav"
            tr = dataclasses.replace(
                tr, language="en", features=feats,
                audio={"sample_rate": 16000, "channels": 2, "layout": "stereo",
                       "sha256": f"{i:064x}", "source_key": key, "etag": f"etag-{i}",
                       "size": 1_000_000 + i},
                roles={"labels": {"CH0": "agent", "CH1": "customer"},
                       "by_role": {"agent": ["CH0"], "customer": ["CH1"]},
                       "confidence": 0.9, "method": "sidecar", "diarization_backend": "channels"})
            tr, _ = redact_transcript(tr, pii)
            batch.append((i, key, tr))
        stale = [k for k, (_, _, tr) in enumerate(batch) if not features_valid(tr, tr.features)]
        if stale:
            fresh = features_batch([batch[k][2] for k in stale])
            for k, f in zip(stale, fresh):
                i, key, tr = batch[k]
                batch[k] = (i, key, dataclasses.replace(tr, features=f))
            recomputed += len(stale)
        for i, key, tr in batch:
            data = tr.to_json()
            sizes += len(data)
            (folder / "transcripts" / f"{tr.call_id}.json").write_bytes(data)
            ledger[tr.call_id] = Entry(call_id=tr.call_id, source_key=key, etag=f"etag-{i}",
                                       size=1_000_000 + i, audio_sha256=f"{i:064x}",
                                       speech_fingerprint=fp, asr_model=tr.models.get("asr", ""),
                                       diarization_model=tr.models.get("diarization", ""),
                                       ruleset_version=ruleset_version, categories_version="old",
                                       status="scored", run_id="seed")
        if progress:
            print(f"  seeded {min(n, c0 + chunk)}/{n}", file=sys.stderr, flush=True)
    ledger_mod.commit(open_store(str(folder)), ledger)
    return {"n": n, "seed_s": time.perf_counter() - t0, "transcript_bytes_mean": sizes / max(n, 1),
            "features_recomputed_at_seed": recomputed}


CACHE = Path(os.environ.get("CALLCOACH_BENCH_CACHE", "/tmp/callcoach-bench"))


def archive_copy(n: int, dest: Path, seed: int = 11) -> dict:
    """A fresh copy of an ``n``-call seeded archive at ``dest`` (seeded once, then cached;
    the cache is keyed by the features version, since stored features of an older version
    would make every rescore recompute sentence embeddings and measure that instead)."""
    import hashlib
    import shutil

    from callcoach.coaching.features import FEATURES_VERSION

    fv = hashlib.sha256(FEATURES_VERSION.encode()).hexdigest()[:8]
    src = CACHE / f"archive-{n}-s{seed}-f{fv}"
    marker = src / "seeded.json"
    if not marker.is_file():
        if src.exists():
            shutil.rmtree(src)
        facts = seed_archive(src, n, seed=seed, progress=n >= 2000)
        marker.write_text(json.dumps(facts))
    facts = json.loads(marker.read_text())
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(src, dest, ignore=shutil.ignore_patterns("seeded.json"))
    return facts
