#!/usr/bin/env python
"""Write the blank sentence-label files of one TRAIN-split author's calls, for a labeller.

    .venv/bin/python -m scripts.label_skeleton author-i /tmp/label-author-i

One `<call_id>.jsonl` per call: a row per sentence exactly as the engine splits the script's
text (`k`, `speaker`, `text`, `acts: []`), which is the row layout of
samples/labeled/acts/<author>.jsonl.  The labeller fills `acts` (samples/corpus/ACTS.md) and
lists the customer's concerns; `scripts/train_acts.py` refuses labels whose sentences no
longer match the call.  Test- and validation-split authors are refused: they get no labels.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, os.path.join(str(ROOT), "pipelines"))   # the callcoach package of this tree

from callcoach.coaching.features import _segment  # noqa: E402
from scripts import coaching_data as data  # noqa: E402


def skeleton(script: dict) -> list[dict]:
    tr = data.script_transcript(script)
    seg = _segment(tr)
    return [{"call_id": script["call_id"], "k": k, "speaker": tr.turns[i].speaker,
             "text": tr.turns[i].text[a:b].strip(), "acts": []}
            for k, (i, (a, b)) in enumerate(zip(seg["turn"], seg["span"]))]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("author")
    ap.add_argument("out", type=Path)
    args = ap.parse_args(argv)
    if args.author not in data.splits()["train"]:
        raise SystemExit(f"{args.author} is not a train-split author: only train calls are labelled")
    args.out.mkdir(parents=True, exist_ok=True)
    n = 0
    for _a, _p, script in data.call_scripts("train", {args.author}):
        rows = skeleton(script)
        (args.out / f"{script['call_id']}.jsonl").write_text(
            "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
        n += 1
    print(f"{n} calls -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
