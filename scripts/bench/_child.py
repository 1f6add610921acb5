"""Run one callcoach run in this process with its phases timed from the outside (used by
the benchmarks through ``common.run_child``; a fresh process per run, as a nightly job).

    python -m scripts.bench._child --result R.json --mode rescore --output DIR [--force]
    python -m scripts.bench._child --result R.json --mode score --input DIR --output DIR
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

T_START = time.perf_counter()

from scripts.bench.common import ROOT, timed  # noqa: E402,F401  (ROOT: sets sys.path and offline env)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--result", required=True)
    ap.add_argument("--mode", choices=["rescore", "score"], required=True)
    ap.add_argument("--input", default="")
    ap.add_argument("--output", required=True)
    ap.add_argument("--force", action="store_true")
    ap.add_argument("--num-cpus", type=int, default=None)
    ap.add_argument("--profile", default=None, help="cProfile the driver; pstats file")
    args = ap.parse_args()

    t0 = time.perf_counter()
    from callcoach import flow
    import ray  # noqa: F401
    import_s = time.perf_counter() - t0

    phases: dict[str, float] = {}
    marks: dict[str, float] = {}

    def timed_gen(name, fn):
        def wrapper(*a, **k):
            s = time.perf_counter()
            first = None
            n = 0
            for row in fn(*a, **k):
                if first is None:
                    first = time.perf_counter() - s
                n += 1
                yield row
            phases[name] = phases.get(name, 0.0) + time.perf_counter() - s
            marks["first_row_s"] = first or 0.0
            marks["rows"] = n
        return wrapper

    flow.init_ray = timed(flow.init_ray, phases, "ray_init_s")
    flow._versions = timed(flow._versions, phases, "load_rules_s")
    flow.ledger_mod.load = timed(flow.ledger_mod.load, phases, "ledger_load_s")
    flow.ledger_mod.commit = timed(flow.ledger_mod.commit, phases, "ledger_commit_s")
    flow._stored_transcripts = timed(flow._stored_transcripts, phases, "list_transcripts_s")
    flow.list_calls = timed(flow.list_calls, phases, "list_inputs_s")
    flow._finish = timed(flow._finish, phases, "finish_tables_s")
    flow._execute = timed_gen("execute_s", flow._execute)

    config = flow.RunConfig(input=args.input, output=args.output, num_cpus=args.num_cpus)
    profiler = None
    if args.profile:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    t0 = time.perf_counter()
    summary = flow.run(config, rescore_only=args.mode == "rescore", force=args.force)
    run_s = time.perf_counter() - t0
    if profiler:
        profiler.disable()
        profiler.dump_stats(args.profile)
    t0 = time.perf_counter()
    import ray as _ray

    _ray.shutdown()
    shutdown_s = time.perf_counter() - t0
    doc = {"summary": {k: v for k, v in summary.to_dict().items() if k != "failures"},
           "failures": summary.failures[:5],
           "import_s": import_s, "run_s": run_s, "ray_shutdown_s": shutdown_s,
           "child_total_s": time.perf_counter() - T_START, "phases": phases, "marks": marks,
           "loadavg_end": os.getloadavg()}
    with open(args.result, "w") as fh:
        json.dump(doc, fh, indent=1, default=str)
    return 3 if summary.failed else 0


if __name__ == "__main__":
    sys.exit(main())
