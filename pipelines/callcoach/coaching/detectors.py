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

from .acts import opening_sentences, without_opening_handoff
from .rules import RuleSet


@dataclass
class Batch:
    """Sentences of a batch of calls, flattened."""
    offsets: np.ndarray          # [n_calls + 1] row offsets
    frame: pl.DataFrame


def build_frame(feature_list: Sequence[Mapping[str, Any]], speakers: Sequence[Sequence[str]],
                ruleset: RuleSet) -> Batch:
    """One row per sentence.  ``speakers[i][k]`` is the speaker of sentence k of call i
    (taken from the transcript's turns, so a role fix never invalidates features).  The
    call's opening turn is no evidence of a hand-off, here as in the call head's evidence
    (``acts.without_opening_handoff``): a self-introduction reads much like a colleague being
    introduced."""
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
        opening = opening_sentences(tt)
        for a in sem:
            if a == "answered":
                # best answer-head score within the agent's next `within_turns` turns
                k = ruleset.answer_within_turns
                sims[a].extend(max(x[:k]) if x[:k] else 0 for x in f["answer"])
            elif a == "unanswered":
                sims[a].extend(f.get("unanswered") or [0] * n)
            else:
                sims[a].extend(without_opening_handoff(a, fs[a], opening))
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


# Words too common in calls to show that an agent's sentence takes up the customer's concern.
_COMMON = frozenset("""
about above after again also always another anything around back been before being below
between both call called calling calls can't cannot could couldn't didn't does doesn't doing
done don't down each even ever every from going gonna good have haven't having here hello
into just know last like little look make many maybe mean more most much need needs never
okay only other over please really right said same should some something still sure than
thank thanks that that's their them then there there's these they they'll they're thing
things think this those through today told very want wanted wants well were what what's
when where which while will with won't would yeah year years your you're you've account
number time week weeks month months morning afternoon evening tomorrow yesterday because
actually alright anyway
""".split())


def content_words(norm: str) -> set[str]:
    """Words of a normalised sentence that carry its topic (crude stem: no plural s)."""
    out = set()
    for w in norm.split():
        if len(w) >= 4 and w.isalpha() and w not in _COMMON:
            out.add(w[:-1] if w.endswith("s") and len(w) > 4 else w)
    return out


def unanswered_concerns(hits: Mapping[str, list[int]], ruleset: RuleSet,
                        call: Mapping[str, Sequence] | None = None) -> list[tuple[int, str]]:
    """(sentence index, concern name) of every concern topic the customer raised that no
    agent sentence answers soon after (first raise of the topic), in time order.

    A raise is answered by an agent sentence within the next ``within_turns`` agent turns
    that names the topic (``answer`` regex) or takes up one of the customer's own content
    words ("child seat", "copay"), or, for a question, by a direct
    reply among the next ``within`` sentences (``call``: the sentences' ``turn``, ``speaker``
    and ``norm``; without it, any later agent sentence naming the topic answers).  A topic counts as answered when any of its raises is."""
    out: list[tuple[int, str]] = []
    within = ruleset.direct_answer_within
    questions = set(hits.get("concern.question") or ()) if within else set()
    direct = (hits.get("answer.direct") or []) if within else []
    turns = call.get("turn") if call else None
    speakers = call.get("speaker") if call else None
    norms = call.get("norm") if call else None
    k_turns = ruleset.answer_within_turns

    def window(r: int) -> range:
        """Sentence indices up to the end of the agent's k_turns-th turn after sentence r."""
        if turns is None:
            return range(r + 1, 10 ** 9)
        seen: list[int] = []
        end = len(turns)
        for j in range(r + 1, len(turns)):
            if speakers[j] == "agent":
                if turns[j] not in seen:
                    if len(seen) == k_turns:
                        end = j
                        break
                    seen.append(turns[j])
        return range(r + 1, end)

    # learned (rule acts of these names, when the rule set defines them): a customer sentence
    # the act model reads as a concern is raised even without a topic word; any concern the
    # answer head scores as answered within the agent's next turns is answered
    by_model = set(hits.get("concern_answered") or ())
    topical: set[int] = set()
    for cn in ruleset.concerns:
        raised = hits.get(f"concern.{cn}") or []
        topical.update(raised)
        if not raised or not ruleset.topics_decide:
            continue
        answers = set(hits.get(f"answer.{cn}") or [])
        answered = False
        for r in raised:
            if r in by_model:
                answered = True
                break
            w = window(r)
            # the topic named within the agent's next turns answers it; later, nothing does
            # ("the refuelling charge" ten turns on is not an answer to "is the child seat
            # charged per day?")
            if any(a in w for a in answers):
                answered = True
            elif r in questions and any(r < d <= r + within for d in direct):
                # "Will this affect my discount?" - "No, it stays as it is"
                answered = True
            elif norms is not None:
                mine = content_words(norms[r])
                if mine and any(speakers[j] == "agent" and mine & content_words(norms[j])
                                for j in w if j < len(norms)):
                    answered = True
            if answered:
                break
        if not answered:
            out.append((raised[0], cn))
    for r in hits.get("concern_raised") or ():
        if r in topical or r in by_model:
            continue
        if r in questions and any(r < d <= r + within for d in direct):
            continue
        out.append((r, LEARNED_CONCERN))
    # learned, whole (rule act "concern_unanswered", when the rule set defines it): a
    # customer sentence the concern head reads as a concern left unanswered is one, named
    # by the first concern topic it raises
    if "concern_unanswered" in ruleset.acts:
        have = {r for r, _ in out}
        for r in hits.get("concern_unanswered") or ():
            if r not in have:
                out.append((r, next((cn for cn in ruleset.concerns
                                     if r in (hits.get(f"concern.{cn}") or ())), LEARNED_CONCERN)))
    out.sort()
    return out


LEARNED_CONCERN = "question"     # the name of a concern raised without a topic word
LEARNED_CONCERN_LABEL = "a question"


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
        return lambda h: bool(unanswered_concerns(h, ruleset, h.get("@call")))
    raise ValueError(f"unknown condition {k!r}")
