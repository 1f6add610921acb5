"""Act detection over a batch of sentences, and the call-level condition logic.

Detection is columnar: the sentences of every call in a batch form one polars frame
(normalised text, speaker, stored act-model probabilities, echo); each act of the rule set
becomes one boolean column (regexes run in polars' Rust engine, acts that reference other
acts are evaluated in dependency order, ``turn_has`` is a window over the turn).  The
result is, per act, the sorted list of sentence indices where it fired; everything after
that (checks, risks, temporal logic) is a few list look-ups per call.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np
import polars as pl

from .rules import RuleSet


@dataclass
class Batch:
    """Sentences of a batch of calls, flattened."""
    offsets: np.ndarray          # [n_calls + 1] row offsets
    frame: pl.DataFrame


def build_frame(feature_list: Sequence[Mapping[str, Any]], speakers: Sequence[Sequence[str]],
                ruleset: RuleSet) -> Batch:
    """One row per sentence.  ``speakers[i][k]`` is the speaker of sentence k of call i
    (taken from the transcript's turns, so a role fix never invalidates features)."""
    sem = ruleset.model_acts
    norm: list[str] = []
    spk: list[str] = []
    gturn: list[int] = []
    echo: list[int] = []
    sims: dict[str, list[int]] = {a: [] for a in sem}
    offsets = [0]
    turn_base = 0
    for f, sp in zip(feature_list, speakers):
        n = f["n"]
        norm.extend(f["norm"])
        spk.extend(sp)
        tt = f["turn"]
        gturn.extend([turn_base + x for x in tt])
        turn_base += (max(tt) + 1) if tt else 0
        echo.extend(f["echo"])
        fs = f["prob"]
        for a in sem:
            sims[a].extend(fs[a])
        offsets.append(offsets[-1] + n)
    cols: dict[str, Any] = {
        "norm": pl.Series("norm", norm, dtype=pl.String),
        "speaker": pl.Series("speaker", spk, dtype=pl.Categorical),
        "gturn": pl.Series("gturn", gturn, dtype=pl.Int64),
        "echo": pl.Series("echo", echo, dtype=pl.Int32),
    }
    for a in sem:
        cols[f"p:{a}"] = pl.Series(f"p:{a}", sims[a], dtype=pl.Int32)
    return Batch(np.asarray(offsets, np.int64), pl.DataFrame(cols))


def _expr(node: Mapping[str, Any]) -> pl.Expr:
    (k, v), *rest = node.items()
    if k == "model":
        # stored as P x 1000 (int): compare with the threshold on the same grid
        return pl.col(f"p:{v}") >= int(round(node["min"] * 1000))
    if k == "all":
        e = _expr(v[0])
        for x in v[1:]:
            e = e & _expr(x)
        return e
    if k == "any":
        e = _expr(v[0])
        for x in v[1:]:
            e = e | _expr(x)
        return e
    if k == "not":
        return ~_expr(v)
    if k == "re":
        return pl.col("norm").str.contains(v)
    if k == "echo":
        return pl.col("echo") >= v
    if k == "act":
        return pl.col(f"act:{v}")
    if k == "turn_has":
        return pl.col(f"act:{v}").any().over("gturn")
    if k == "question":
        q = pl.col("norm").str.contains("?", literal=True)
        return q if v else ~q
    raise ValueError(f"unknown condition {k!r}")


def _levels(ruleset: RuleSet) -> list[list[str]]:
    from .rules import _act_refs
    depth: dict[str, int] = {}
    for n in ruleset.act_order:
        refs = _act_refs(ruleset.acts[n].when)
        depth[n] = 1 + max((depth[r] for r in refs), default=-1)
    levels: list[list[str]] = [[] for _ in range(max(depth.values(), default=-1) + 1)]
    for n in ruleset.act_order:
        levels[depth[n]].append(n)
    return levels


def detect_acts(batch: Batch, ruleset: RuleSet) -> tuple[list[str], np.ndarray]:
    """Boolean matrix [rows, acts] of which act fired on which sentence.

    Agent and customer sentences are evaluated separately, each against only the acts
    of its speaker (and speaker "any"), so every regex runs on about half the rows."""
    names = list(ruleset.act_order)
    n_rows = batch.frame.height
    mat = np.zeros((n_rows, len(names)), bool)
    if n_rows == 0:
        return names, mat
    col = {n: j for j, n in enumerate(names)}
    levels = _levels(ruleset)
    frame = batch.frame.with_row_index("_row")
    for speaker in ("agent", "customer"):
        part = frame.filter(pl.col("speaker") == speaker)
        if part.height == 0:
            continue
        mine = [n for n in names if ruleset.acts[n].speaker in (speaker, "any")]
        if not mine:
            continue
        lf = part.lazy()
        for level in levels:
            exprs = []
            for n in level:
                if ruleset.acts[n].speaker in (speaker, "any"):
                    exprs.append(_expr(ruleset.acts[n].when).fill_null(False).alias(f"act:{n}"))
                else:
                    exprs.append(pl.lit(False).alias(f"act:{n}"))
            lf = lf.with_columns(exprs)
        out = lf.select(["_row"] + [f"act:{n}" for n in mine]).collect()
        rows = out["_row"].to_numpy()
        block = out.select([f"act:{n}" for n in mine]).to_numpy().astype(bool, copy=False)
        mat[np.ix_(rows, [col[n] for n in mine])] = block
    return names, mat


def hits_per_call(names: Sequence[str], mat: np.ndarray, offsets: np.ndarray) -> list[dict[str, list[int]]]:
    """Per call: act -> sorted local sentence indices where it fired."""
    n_calls = len(offsets) - 1
    per_call: list[dict[str, list[int]]] = [dict.fromkeys(names) for _ in range(n_calls)]
    empty: list[int] = []
    if mat.shape[0]:
        call_of_row = np.repeat(np.arange(n_calls), np.diff(offsets))
    for j, name in enumerate(names):
        idx = np.flatnonzero(mat[:, j])
        if idx.size == 0:
            for d in per_call:
                d[name] = empty
            continue
        local = (idx - offsets[call_of_row[idx]]).tolist()
        bounds = np.searchsorted(idx, offsets).tolist()
        for i in range(n_calls):
            a, b = bounds[i], bounds[i + 1]
            per_call[i][name] = local[a:b] if a != b else empty
    return per_call


# ---------------------------------------------------------------------------------------
# call-level conditions
# ---------------------------------------------------------------------------------------
def first_of(hits: Mapping[str, list[int]], names: Sequence[str]) -> int | None:
    best = None
    for n in names:
        h = hits.get(n)
        if h and (best is None or h[0] < best):
            best = h[0]
    return best


def unanswered_concerns(hits: Mapping[str, list[int]], ruleset: RuleSet) -> list[tuple[int, str]]:
    """(sentence index, concern name) of every concern topic the customer raised that no
    later agent sentence answers (first raise of the topic), in time order."""
    out: list[tuple[int, str]] = []
    within = ruleset.direct_answer_within
    questions = set(hits.get("concern.question") or ()) if within else set()
    direct = (hits.get("answer.direct") or []) if within else []
    for cn in ruleset.concerns:
        raised = hits.get(f"concern.{cn}") or []
        if not raised:
            continue
        answers = hits.get(f"answer.{cn}") or []
        # a concern is addressed when an agent answers its topic after it was first
        # raised; the customer coming back to an answered topic is not a new concern
        if answers and answers[-1] >= raised[0]:
            continue
        # "Will this affect my discount?" - "No, it stays as it is": a direct reply to
        # the question answers it whatever words it uses
        if any(r in questions and any(r < d <= r + within for d in direct) for r in raised):
            continue
        out.append((raised[0], cn))
    out.sort()
    return out


def compile_cond(cond: Mapping[str, Any], ruleset: RuleSet):
    """A call-level condition as a closure over the per-call hits (fast path of evaluate)."""
    (k, v), = cond.items()
    if k == "has":
        return lambda h: bool(h.get(v))
    if k == "not":
        f = compile_cond(v, ruleset)
        return lambda h: not f(h)
    if k == "all":
        fs = [compile_cond(x, ruleset) for x in v]
        return lambda h: all(f(h) for f in fs)
    if k == "any":
        fs = [compile_cond(x, ruleset) for x in v]
        return lambda h: any(f(h) for f in fs)
    if k == "before":
        first, second = v

        def before(h):
            a = first_of(h, first)
            if a is None:
                return False
            b = first_of(h, second)
            return b is None or a <= b
        return before
    if k == "unanswered_concern":
        return lambda h: bool(unanswered_concerns(h, ruleset))
    raise ValueError(f"unknown condition {k!r}")


def evaluate(cond: Mapping[str, Any], hits: Mapping[str, list[int]], ruleset: RuleSet) -> bool:
    (k, v), = cond.items()
    if k == "has":
        return bool(hits.get(v))
    if k == "not":
        return not evaluate(v, hits, ruleset)
    if k == "all":
        return all(evaluate(x, hits, ruleset) for x in v)
    if k == "any":
        return any(evaluate(x, hits, ruleset) for x in v)
    if k == "before":
        a = first_of(hits, v[0])
        if a is None:
            return False
        b = first_of(hits, v[1])
        return b is None or a <= b
    if k == "unanswered_concern":
        return bool(unanswered_concerns(hits, ruleset))
    raise ValueError(f"unknown condition {k!r}")
