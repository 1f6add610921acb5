#!/usr/bin/env python
"""Rescoring: scoring throughput at scale, and what a real ``callcoach rescore`` costs.

    .venv/bin/python -m scripts.bench.rescore [--n 10000 --n 100000] [--e2e 1000] [--breakdown 300]

Three measurements, each in its own process (so peak RSS is its own):

1. scoring core (``scripts/bench_rescore.py``): synthetic transcripts with stored
   features -> ``score_batch`` in batches of 5,000; only scoring is timed; calls/s, CPU
   seconds and peak RSS at 10k and 100k calls.  One process, so at most one core's worth
   of Python (numpy may use more).
2. end to end: ``run(RunConfig(output=ARCHIVE), rescore_only=True)`` -- Ray start, listing,
   Score actors (transcript read, redaction check, scoring, insights, report JSON + HTML,
   ledger entries), the driver folding results, the calls/insights table rebuild and the
   ledger commit -- on a local folder of --e2e stored transcripts (synthetic, as the
   speech stage stores them: redacted, word timings, features; ~27 KB each).  calls/s
   over the whole run and over the Ray dataset alone; phases timed from outside; CPU
   seconds of the driver, the Ray workers and Ray's own processes sampled with psutil.
3. where a worker's time goes: the same ReadTranscript + Score objects the flow uses,
   called in-process on --breakdown calls with each step wrapped in a timer (no Ray),
   beside ``score_batch`` on the same transcripts -- the per-call overhead of the
   one-call-at-a-time path.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from scripts.bench.common import (CACHE, OUT, ROOT, archive_copy, command_line, loadavg, md_table,
                                  run_child, save_result, small_png, timed, verdict)

TARGET_CALLS_S = 2000.0


# -- 1. scoring core ------------------------------------------------------------------------

def _score_child(n: int, batch: int) -> None:
    """The loop of scripts/bench_rescore.py's run(), with wall AND CPU time of the scoring
    step alone (CPU time is what a busy shared machine leaves intact)."""
    import gc
    import random
    import resource

    from callcoach.coaching.rules import default_ruleset
    from callcoach.coaching.score import score_batch
    from callcoach.report import validate_report
    import scripts.bench_rescore as br

    rs = default_ruleset()
    t0 = time.perf_counter()
    pool = br.sentence_pool()
    by = {"agent": [p for p in pool if p[0] == "agent"], "customer": [p for p in pool if p[0] == "customer"]}
    pool_s = time.perf_counter() - t0
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    rng = random.Random(7)
    done, score_s, score_cpu, synth_s = 0, 0.0, 0.0, 0.0
    types: dict[str, int] = {}
    while done < n:
        m = min(batch, n - done)
        t0 = time.perf_counter()
        items = [br.synth_call(done + j, rng, by) for j in range(m)]
        t1, c1 = time.perf_counter(), time.process_time()
        reports = score_batch(items, rs)
        score_cpu += time.process_time() - c1
        t2 = time.perf_counter()
        synth_s += t1 - t0
        score_s += t2 - t1
        for j, r in enumerate(reports):
            types[r["call_type"]] = types.get(r["call_type"], 0) + 1
            if (done + j) % 97 == 0:
                validate_report(r)
        done += m
        del items, reports
        gc.collect()
    r = {"n": n, "score_s": score_s, "calls_per_s": n / score_s, "score_cpu_s": score_cpu,
         "calls_per_cpu_s": n / score_cpu, "synth_s": synth_s,
         "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "call_types": types,
         "pool_s": pool_s, "rss_before_mb": rss_before, "loadavg": loadavg()}
    print("RESULT " + json.dumps(r))


def score_core(n: int, batch: int) -> dict:
    p = subprocess.run([sys.executable, "-m", "scripts.bench.rescore", "--_score-child", str(n),
                        "--batch", str(batch)], cwd=str(ROOT), capture_output=True, text=True)
    for line in p.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    raise RuntimeError(f"score child failed: {p.stderr[-2000:]}")


# -- 3. in-process breakdown of the worker path ------------------------------------------------

def breakdown(n: int) -> dict:
    """Time each step of ReadTranscript + Score, in-process, on n stored transcripts."""
    import dataclasses

    import callcoach.coaching.score as score_mod
    import callcoach.insights.detect as detect_mod
    import callcoach.insights.tables as itables_mod
    import callcoach.ledger as ledger_mod
    import callcoach.render as reports_mod
    import callcoach.tables as tables_mod
    from callcoach import planning
    from callcoach.stages import score as score_stage
    from callcoach.stages.decode import ReadTranscript
    from callcoach.stages.score import SCORE_BATCH, Score
    from callcoach.coaching.rules import default_ruleset
    from callcoach.pii import PiiConfig
    from callcoach.speech.stage import SpeechConfig
    from callcoach.storage import open_store
    from callcoach.transcript import Transcript

    tmp = Path(tempfile.mkdtemp(prefix="bench-breakdown-"))
    facts = archive_copy(1000, tmp / "a")
    out = str(tmp / "a")
    store = open_store(out)
    ledger, _, _ = ledger_mod.load(store)
    items = planning._stored_transcripts(store, ledger)[:n]

    acc: dict[str, float] = {}

    def wrap(mod, name, label):
        fn = getattr(mod, name)
        setattr(mod, name, timed(fn, acc, label))
        return fn

    originals = [
        (score_mod, "score_batch", wrap(score_mod, "score_batch", "score_batch (rules)")),
        (score_stage, "redact_transcript", wrap(score_stage, "redact_transcript", "redact_transcript (PII re-check)")),
        (detect_mod, "insights_batch", wrap(detect_mod, "insights_batch", "insights_batch")),
        (itables_mod, "insight_row", wrap(itables_mod, "insight_row", "insight_row")),
        (reports_mod, "report_json", wrap(reports_mod, "report_json", "report_json")),
        (reports_mod, "render_html", wrap(reports_mod, "render_html", "render_html")),
        (tables_mod, "call_row", wrap(tables_mod, "call_row", "call_row")),
        (ledger_mod, "record", wrap(ledger_mod, "record", "ledger.record (entry JSON write)")),
    ]
    orig_from_json = Transcript.from_json
    Transcript.from_json = staticmethod(timed(orig_from_json, acc, "Transcript.from_json"))
    try:
        t0 = time.perf_counter()
        rt = ReadTranscript(out)
        sc = Score(out, None, planning.speech_fingerprint(SpeechConfig()), "bench", PiiConfig())
        init_s = time.perf_counter() - t0
        # time store writes/reads of the two objects
        for obj, label_r, label_w in ((rt, "store.read (transcript)", None), (sc, None, "store.write (reports)")):
            st = obj.store
            if label_r:
                r0 = st.read

                def rd(key, _r0=r0, _l=label_r):
                    t = time.perf_counter()
                    try:
                        return _r0(key)
                    finally:
                        acc[_l] = acc.get(_l, 0.0) + time.perf_counter() - t
                st.read = rd
            if label_w:
                w0 = st.write

                def wr(key, data, ct=None, _w0=w0, _l=label_w):
                    t = time.perf_counter()
                    try:
                        return _w0(key, data, ct)
                    finally:
                        if not key.startswith("state/"):
                            acc[_l] = acc.get(_l, 0.0) + time.perf_counter() - t
                st.write = wr
        # warm one call (lazy imports, bank embeddings) outside the timing
        sc.one(rt(dict(items[0])))
        acc.clear()
        c0, t0 = time.process_time(), time.perf_counter()
        rows = []
        rest = items[1:]
        for k in range(0, len(rest), SCORE_BATCH):   # as the Ray stage batches them
            rows += sc.score_rows([rt(dict(it)) for it in rest[k:k + SCORE_BATCH]])
        wall = time.perf_counter() - t0
        cpu = time.process_time() - c0
        failed = sum(r["status"] != "ok" for r in rows)
        m = len(rows)
        # the same transcripts through score_batch (one batched call)
        trs = [orig_from_json((tmp / "a" / "transcripts" / f"{it['call_id']}.json").read_bytes())
               for it in items[1:]]
        for mod, name, fn in originals:
            setattr(mod, name, fn)
        t0 = time.perf_counter()
        score_mod.score_batch([(t, None) for t in trs], default_ruleset())
        batch_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        for t in trs:
            score_mod.score_call(t, default_ruleset())
        one_by_one_s = time.perf_counter() - t0
        rs = default_ruleset()
        t0 = time.perf_counter()
        for t in trs:
            score_mod.score_call(t, rs)
        one_by_one_cached_rs_s = time.perf_counter() - t0
        import cProfile
        import io
        import pstats

        from callcoach.insights.categories import default_categories
        from callcoach.insights.detect import call_insights

        cats = default_categories()
        prof = cProfile.Profile()
        sample = trs[:60]
        prof.enable()
        for t in sample:
            rep = score_mod.score_call(t, rs)
            call_insights(t, rep, cats, ruleset=rs)
        prof.disable()
        buf = io.StringIO()
        st = pstats.Stats(prof, stream=buf)
        st.sort_stats("tottime").print_stats(8)
        st.sort_stats("cumulative").print_callers("collect|DataFrame.select|with_columns")
        cprofile_text = f"cProfile of score_call + call_insights on {len(sample)} calls:\n" + buf.getvalue()
        row_bytes = sum(len(r.get("table_row", "")) + len(r.get("insight_row", "")) + len(r.get("entry", ""))
                        for r in rows) / max(m, 1)
    finally:
        Transcript.from_json = staticmethod(orig_from_json)
        for mod, name, fn in originals:
            setattr(mod, name, fn)
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
    accounted = sum(acc.values())
    acc["(rest: dict/JSON plumbing, dataclass copies)"] = wall - accounted
    return {"calls": m, "failed": failed, "batch": SCORE_BATCH, "init_s": init_s, "wall_s": wall, "cpu_s": cpu,
            "calls_per_s": m / wall, "steps_s": acc, "score_batch_s": batch_s,
            "score_batch_calls_per_s": m / batch_s, "score_call_loop_s": one_by_one_s,
            "score_call_loop_calls_per_s": m / one_by_one_s,
            "score_call_loop_cached_ruleset_calls_per_s": m / one_by_one_cached_rs_s,
            "driver_bytes_per_call": row_bytes, "archive": facts, "loadavg": loadavg(),
            "cprofile": cprofile_text[:12000]}


def _trim_profile(text: str, limit: int = 4500) -> str:
    """The useful lines of a pstats dump (drop blank lines and the long path prefixes)."""
    import re

    lines = [re.sub(r"/\S*/site-packages/", "", l.replace(str(ROOT) + "/", "")) for l in text.splitlines()
             if l.strip()]
    return "\n".join(lines)[:limit]


# -- main -----------------------------------------------------------------------------------

def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, action="append", help="scoring-core sizes (default 10000, 100000)")
    ap.add_argument("--batch", type=int, default=5000)
    ap.add_argument("--e2e", type=int, default=1000, help="stored transcripts for the end-to-end run (0: skip)")
    ap.add_argument("--breakdown", type=int, default=300, help="calls for the in-process breakdown (0: skip)")
    ap.add_argument("--pyspy", action="store_true",
                    help="sample the e2e run's process tree with py-spy (it catches the driver well, "
                         "Ray workers poorly: use the in-process breakdown for those)")
    ap.add_argument("--profile-driver", action="store_true", help="extra e2e run with cProfile on the driver")
    ap.add_argument("--reuse-e2e", action="store_true",
                    help="reuse the end-to-end figures of the last run (re-measure the rest)")
    ap.add_argument("--reuse-core", action="store_true", help="reuse scoring-core figures of an interrupted run")
    ap.add_argument("--_score-child", type=int, dest="score_child", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.score_child:
        _score_child(args.score_child, args.batch)
        return 0
    ns = args.n or [10_000, 100_000]
    partial = OUT / "rescore.partial.json"

    def checkpoint(**kw):
        OUT.mkdir(parents=True, exist_ok=True)
        doc = json.loads(partial.read_text()) if partial.is_file() else {}
        doc.update(kw)
        partial.write_text(json.dumps(doc, default=str))

    core = []
    if args.reuse_core and partial.is_file() and json.loads(partial.read_text()).get("core"):
        core = json.loads(partial.read_text())["core"]
        print(f"reusing scoring-core results from {partial}", file=sys.stderr)
    for n in ([] if core else ns):
        print(f"scoring core n={n} ... (load {loadavg()})", file=sys.stderr, flush=True)
        core.append(score_core(n, args.batch))
        checkpoint(core=core)

    e2e = None
    prev = {}
    for cand in (partial, OUT / "rescore.json"):
        if cand.is_file():
            prev = json.loads(cand.read_text())
            break
    if args.reuse_e2e and prev.get("e2e"):
        e2e = prev["e2e"]
        e2e.pop("profile", None)   # py-spy figures belong to a run that asked for them
        print("reusing end-to-end figures of an earlier run", file=sys.stderr)
    elif args.e2e:
        print(f"end-to-end rescore of {args.e2e} stored transcripts ...", file=sys.stderr, flush=True)
        tmp = Path(tempfile.mkdtemp(prefix="bench-e2e-"))
        facts = archive_copy(args.e2e, tmp / "out")
        e2e = run_child(["--mode", "rescore", "--output", str(tmp / "out")], sample=True,
                        pyspy=args.pyspy)
        e2e["archive"] = facts
        e2e["loadavg"] = loadavg()
        print(f"  e2e: {e2e['summary']['rescored']} calls in {e2e['run_s']:.1f} s (load {loadavg()})",
              file=sys.stderr, flush=True)
        checkpoint(e2e={k: v for k, v in e2e.items() if k != "memory_series"})
        if args.profile_driver:
            import pstats
            import io

            archive_copy(args.e2e, tmp / "out2")
            prof = tmp / "driver.pstats"
            p = run_child(["--mode", "rescore", "--output", str(tmp / "out2"), "--profile", str(prof)])
            buf = io.StringIO()
            pstats.Stats(str(prof), stream=buf).sort_stats("tottime").print_stats(20)
            e2e["driver_profile_top"] = buf.getvalue()[:8000]
            e2e["profiled_run_s"] = p["run_s"]
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)

    bd = breakdown(args.breakdown) if args.breakdown else None

    # -- report --------------------------------------------------------------------------
    lines = []
    rows = []
    for r in core:
        cps_cpu = r.get("calls_per_cpu_s")
        rows.append([f"scoring core (score_batch, 1 process)", f"{r['n']:,}", f"{r['score_s']:.1f}",
                     f"**{r['calls_per_s']:,.0f}** wall" + (f"; {cps_cpu:,.0f} per CPU-s (1 core), "
                                                           f"2 cores ~{2 * cps_cpu:,.0f}" if cps_cpu else ""),
                     f"{r['peak_rss_mb']:.0f}",
                     f">= {TARGET_CALLS_S:,.0f}: wall {verdict(r['calls_per_s'] >= TARGET_CALLS_S)}"
                     + (f", CPU-time {verdict(2 * cps_cpu >= TARGET_CALLS_S)}" if cps_cpu else ""), r["loadavg"]])
    if e2e:
        s = e2e["summary"]
        ph = e2e["phases"]
        n = s["rescored"]
        ds_s = ph.get("execute_s", 0) - ph.get("ray_init_s", 0)
        e2e["calls_per_s"] = n / e2e["run_s"]
        e2e["calls_per_s_dataset"] = n / ds_s if ds_s else 0
        mem = e2e["memory"]
        rows.append(["end to end `run(rescore_only=True)` (Ray, local folder)", f"{n:,}", f"{e2e['run_s']:.1f}",
                     f"**{e2e['calls_per_s']:.1f}** (dataset only: {e2e['calls_per_s_dataset']:.1f})",
                     f"driver {mem['driver_peak_mb']:.0f}, workers sum {mem['workers_sum_peak_mb']:.0f}",
                     "(backfill cost; no target)", e2e["loadavg"]])
    if bd:
        rows.append([f"ReadTranscript+Score in-process, batches of {bd.get('batch', 1)} (1 core, no Ray)", f"{bd['calls']:,}", f"{bd['wall_s']:.1f}",
                     f"{bd['calls_per_s']:.1f}", "-", "-", bd["loadavg"]])
    lines.append(md_table(["what", "calls", "s", "calls/s", "peak RSS MB", "target", "load avg"], rows))
    if e2e:
        ph = e2e["phases"]
        order = ["import_s", "ray_init_s", "dataset (execute - ray init)", "finish_tables_s", "ledger_commit_s",
                 "ray_shutdown_s"]
        vals = {"import_s": e2e["import_s"], "ray_shutdown_s": e2e["ray_shutdown_s"],
                "dataset (execute - ray init)": ph.get("execute_s", 0) - ph.get("ray_init_s", 0)}
        vals.update(ph)
        vals["finish_tables_s"] = ph.get("finish_tables_s", 0) - ph.get("ledger_commit_s", 0)
        lines += ["", f"End-to-end phases ({e2e['summary']['rescored']} calls; first row after "
                      f"{e2e['marks'].get('first_row_s', 0):.1f} s of execute; process wall "
                      f"{e2e['process_wall_s']:.1f} s):", "",
                  md_table(["phase", "s", "share of process wall"],
                           [[k.replace("finish_tables_s", "finish: tables rebuild (excl. ledger commit)"),
                             f"{vals.get(k, 0):.1f}", f"{vals.get(k, 0) / e2e['process_wall_s']:.0%}"]
                            for k in order]),
                  "", "CPU seconds by process class (psutil, whole run): "
                  + ", ".join(f"{k} {v:.1f}" for k, v in e2e["memory"]["cpu_s_by_class"].items())]
        prof = e2e.get("profile") or {}
        if prof:
            lines += ["", "py-spy over the whole e2e run (20 Hz, busy threads only; share = share of that "
                          "process kind's samples; inclusive):", ""]
            for kind in sorted(prof, key=lambda k: -prof[k]["samples"]):
                p = prof[kind]
                if p["samples"] < 20 or kind.startswith("other"):
                    continue
                mine = [(f, c, sh) for f, c, sh in p["top_inclusive"]
                        if any(m in f for m in ("(flow.py)", "(planning.py)", "(commit.py)", "(decode.py)")) or "pipelines" in f or any(
                            m in f for m in ("(score.py)", "(detect.py)", "(detectors.py)", "(pii.py)", "(render.py)",
                                             "(tables.py)", "(storage.py)", "(ledger.py)", "(transcript.py)",
                                             "(features.py)", "collect (", "(_child.py)"))][:16]
                lines += [f"**{kind}** ({p['processes']} process(es), {p['samples']} samples = "
                          f"{p['samples'] / 20:.0f} s of CPU):", "",
                          md_table(["function (inclusive)", "share"], [[f"`{f}`", f"{sh:.0%}"] for f, c, sh in mine]),
                          ""]
        if "driver_profile_top" in e2e:
            lines += ["", "Driver cProfile (top 20 by own time):", "", "```", e2e["driver_profile_top"][:5000], "```"]
    if bd:
        steps = sorted(bd["steps_s"].items(), key=lambda kv: -kv[1])
        lines += ["", f"Worker path, in-process, {bd['calls']} calls in batches of {bd.get('batch', 1)} "
                      f"({bd['calls_per_s']:.1f} calls/s on one "
                      f"core; CPU {bd['cpu_s']:.1f} s of {bd['wall_s']:.1f} s wall):", "",
                  md_table(["step", "ms/call", "share"],
                           [[k, f"{v / bd['calls'] * 1000:.2f}", f"{v / bd['wall_s']:.0%}"] for k, v in steps]),
                  "", f"Same transcripts: `score_batch` (one call) {bd['score_batch_calls_per_s']:,.0f} calls/s; "
                      f"`score_call` one by one {bd['score_call_loop_calls_per_s']:,.0f} calls/s "
                      f"(with a shared RuleSet object {bd['score_call_loop_cached_ruleset_calls_per_s']:,.0f}). "
                      f"Driver keeps ~{bd['driver_bytes_per_call']:,.0f} bytes of row JSON per call.", "",
                  "```", _trim_profile(bd.get("cprofile", "")), "```"]
    text = "\n".join(lines)
    print(text)

    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(7, 3.2))
        labels, vals = [], []
        for r in core:
            labels.append(f"score_batch\n{r['n'] // 1000}k")
            vals.append(r["calls_per_s"])
        if bd:
            labels.append("Score path\nin-process")
            vals.append(bd["calls_per_s"])
        if e2e:
            labels.append(f"e2e rescore\n{e2e['summary']['rescored']}")
            vals.append(e2e["calls_per_s"])
        ax.bar(labels, vals, color=["#1f5f8b"] * len(core) + ["#7aa6c2", "#e07b39"][: len(vals) - len(core)])
        ax.axhline(TARGET_CALLS_S, color="red", ls="--", lw=1, label="target 2,000 calls/s")
        ax.set_yscale("log")
        ax.set_ylabel("calls/s (log)")
        for i, v in enumerate(vals):
            ax.text(i, v, f"{v:,.0f}", ha="center", va="bottom", fontsize=8)
        ax.legend(fontsize=7)
        ax.set_title("Rescoring throughput, 2 cores", fontsize=9)
        small_png(fig, "rescore")
    except Exception as exc:
        print(f"(plot failed: {exc})", file=sys.stderr)

    if e2e:
        e2e.pop("memory_series", None)
    partial.unlink(missing_ok=True)
    save_result("rescore", {"command": command_line(), "core": core, "e2e": e2e, "breakdown": bd,
                            "target_calls_s": TARGET_CALLS_S, "markdown": text, "loadavg_end": loadavg()})
    return 0


if __name__ == "__main__":
    sys.exit(main())
