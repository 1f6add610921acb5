"""Versioned rule sets: YAML under ``pipelines/callcoach/rules/``, validated fail-fast.

A rule set names the acts to detect (the act model's probability for an act, regexes over
normalised text for what is exact, echo, composition), the concerns, the call types with their expected talk
ratio, checks and risks, the call-type classifier, tone thresholds, the sequence steps and
the coaching text.  ``RuleSet.version`` is ``"<human version>-<first 8 hex of the sha256 of the
file's bytes>"``: every report names the exact rules that scored it.

Any malformed file raises ``RuleSetError`` naming the file, the rule and the field.
The format is documented in docs/coaching.md.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import yaml

from ..contract import AREAS, CALL_TYPES, SEQUENCE_STEPS
from ..contract import SPEAKERS as CONTRACT_SPEAKERS
from .acts import ACT_SPEAKER as _SENTENCE_ACT_SPEAKER, ACTS as _SENTENCE_ACTS, DERIVED_ACTS

# what a `{model: NAME, min: P}` leaf may read: the sentence head's acts, and the derived
# "answered" (customer sentences: the answer head's best score within the agent's next
# `concern_answers.within_turns` turns)
MODEL_ACTS = _SENTENCE_ACTS + tuple(DERIVED_ACTS)
ACT_SPEAKER = {**_SENTENCE_ACT_SPEAKER, **DERIVED_ACTS}

RULES_DIR = Path(__file__).resolve().parent.parent / "rules"
DEFAULT_RULES = RULES_DIR / "default.yaml"

SPEAKERS = CONTRACT_SPEAKERS + ("any",)      # whose sentences an act may come from
BUILTIN_ANCHORS = ("@last_agent", "@first_customer", "@longest_agent", "@longest_customer")

_LEAF_KEYS = {"re", "model", "echo", "act", "turn_has", "question"}
_TOP_KEYS = {"ruleset", "version", "description", "macros", "acts", "concerns", "concern_answers",
             "call_types", "classify", "tone", "sequence", "checks", "risks", "coaching"}
_COND_KEYS = {"has", "not", "all", "any", "before", "unanswered_concern"}
_FORBIDDEN_RE = re.compile(r"\(\?<?[=!]|\\[1-9]")   # look-around / back-references
_MACRO_RE = re.compile(r"<<([A-Z_][A-Z0-9_]*)>>")


class RuleSetError(ValueError):
    """A rule file is malformed.  The message names file, rule and field."""

    def __init__(self, path: str | Path, rule: str, field_: str, message: str):
        self.path, self.rule, self.field = str(path), rule, field_
        super().__init__(f"{path}: rule '{rule}': field '{field_}': {message}")


@dataclass(frozen=True)
class Act:
    name: str
    speaker: str
    when: Any            # normalised leaf tree (dicts), macros expanded


@dataclass(frozen=True)
class Concern:
    name: str
    label: str
    raise_re: str
    answer_re: str


@dataclass(frozen=True)
class Rule:
    """A process check (kind "check") or a risk (kind "risk")."""
    name: str
    kind: str
    when: Any                     # check: pass condition; risk: presence condition
    na: Any = None                # check only: not-applicable condition
    evidence: tuple[str, ...] = ()
    fail_evidence: tuple[str, ...] = ()
    na_evidence: tuple[str, ...] = ()
    area: str = "ownership"
    issue: str = ""
    suggestion: str = ""
    strength: str = ""


@dataclass(frozen=True)
class CallTypeSpec:
    name: str
    talk_ratio: tuple[float, float]
    checks: tuple[str, ...]
    risks: tuple[str, ...]


@dataclass(frozen=True)
class RuleSet:
    name: str
    human_version: str
    sha256: str
    path: str
    acts: dict[str, Act]
    act_order: tuple[str, ...]            # dependency order
    concerns: dict[str, Concern]
    call_types: dict[str, CallTypeSpec]
    classify: dict[str, Any]
    tone: dict[str, Any]
    sequence: dict[str, tuple[str, ...]]
    checks: dict[str, Rule]
    risks: dict[str, Rule]
    coaching: dict[str, Any] = field(default_factory=dict)
    raw: dict[str, Any] = field(repr=False, default_factory=dict)
    # a concern the customer raised as a question is answered by a direct reply
    # (act "answer.direct") among the next `direct_answer_within` sentences; 0 = off
    direct_answer_within: int = 0
    # a concern is answered within the agent's next `answer_within_turns` turns
    answer_within_turns: int = 3
    # false: the concern topics only name the concerns that the learned act
    # "concern_unanswered" finds; they no longer decide what is left unanswered themselves
    topics_decide: bool = True

    @property
    def version(self) -> str:
        return f"{self.human_version}-{self.sha256[:8]}"   # path-safe: names reports/<version>/

    @property
    def model_acts(self) -> tuple[str, ...]:
        """Act-model probabilities the rules read (only these columns are loaded)."""
        found: set[str] = set()

        def walk(node):
            if isinstance(node, dict):
                if "model" in node:
                    found.add(node["model"])
                for v in node.values():
                    walk(v)
            elif isinstance(node, list):
                for v in node:
                    walk(v)
        for a in self.acts.values():
            walk(a.when)
        return tuple(sorted(found))


# ---------------------------------------------------------------------------------------
def _req(d: Mapping, key: str, path, rule: str, typ=None):
    if not isinstance(d, Mapping) or key not in d:
        raise RuleSetError(path, rule, key, "missing")
    v = d[key]
    if typ is not None and not isinstance(v, typ):
        raise RuleSetError(path, rule, key, f"expected {getattr(typ, '__name__', typ)}, got {type(v).__name__}")
    return v


def _expand(pattern: str, macros: Mapping[str, str], path, rule: str, fld: str, depth: int = 0) -> str:
    if depth > 10:
        raise RuleSetError(path, rule, fld, "macro expansion too deep (cycle?)")

    def sub(m):
        name = m.group(1)
        if name not in macros:
            raise RuleSetError(path, rule, fld, f"unknown macro <<{name}>>")
        return _expand(macros[name], macros, path, rule, fld, depth + 1)
    return _MACRO_RE.sub(sub, pattern)


def _check_regex(pattern: str, path, rule: str, fld: str) -> str:
    if not isinstance(pattern, str) or not pattern:
        raise RuleSetError(path, rule, fld, "regex must be a non-empty string")
    if _FORBIDDEN_RE.search(pattern):
        raise RuleSetError(path, rule, fld, "look-around and back-references are not supported "
                           f"(rules run on the Rust regex engine): {pattern!r}")
    try:
        re.compile(pattern)
    except re.error as e:
        raise RuleSetError(path, rule, fld, f"invalid regex: {e}") from None
    return pattern


def _leaf(node: Any, macros, path, rule: str, fld: str) -> Any:
    """Validate/normalise an act condition tree."""
    if not isinstance(node, Mapping) or not node:
        raise RuleSetError(path, rule, fld, f"expected a mapping, got {node!r}")
    keys = set(node)
    if keys & {"all", "any"}:
        (k,) = keys & {"all", "any"} if len(keys & {"all", "any"}) == 1 else (None,)
        if k is None or len(keys) != 1:
            raise RuleSetError(path, rule, fld, f"'all'/'any' must stand alone, got keys {sorted(keys)}")
        items = node[k]
        if not isinstance(items, list) or not items:
            raise RuleSetError(path, rule, f"{fld}.{k}", "expected a non-empty list")
        return {k: [_leaf(x, macros, path, rule, f"{fld}.{k}[{i}]") for i, x in enumerate(items)]}
    if "not" in keys:
        if len(keys) != 1:
            raise RuleSetError(path, rule, fld, "'not' must stand alone")
        return {"not": _leaf(node["not"], macros, path, rule, f"{fld}.not")}
    unknown = keys - _LEAF_KEYS - {"min"}
    if unknown:
        hint = (" ('sem' leaves of the act bank were replaced by 'model' leaves of the act "
                "model: {model: ACT, min: 0..1})" if unknown & {"sem", "margin"} else "")
        raise RuleSetError(path, rule, fld, f"unknown key(s) {sorted(unknown)}; expected one of "
                           f"{sorted(_LEAF_KEYS | {'all', 'any', 'not'})}{hint}")
    kinds = keys & _LEAF_KEYS
    if len(kinds) != 1:
        raise RuleSetError(path, rule, fld, f"a condition has exactly one of {sorted(_LEAF_KEYS)}")
    (k,) = kinds
    v = node[k]
    if k == "re":
        return {"re": _check_regex(_expand(str(v), macros, path, rule, f"{fld}.re"), path, rule, f"{fld}.re")}
    if k == "model":
        if v not in MODEL_ACTS:
            raise RuleSetError(path, rule, f"{fld}.model", f"unknown act {v!r}; the act model has {list(MODEL_ACTS)}")
        m = node.get("min")
        if not isinstance(m, (int, float)) or isinstance(m, bool) or not (0 < m <= 1):
            raise RuleSetError(path, rule, f"{fld}.min", "expected a probability in (0, 1]")
        return {"model": v, "min": float(m)}
    if "min" in keys:
        raise RuleSetError(path, rule, f"{fld}.min", "'min' only goes with 'model'")
    if k == "echo":
        if not isinstance(v, (int, float)) or isinstance(v, bool) or not (0 <= v <= 1000):
            raise RuleSetError(path, rule, f"{fld}.echo", "expected a number in 0..1000")
        return {"echo": int(v)}
    if k in ("act", "turn_has"):
        if not isinstance(v, str):
            raise RuleSetError(path, rule, f"{fld}.{k}", "expected an act name")
        return {k: v}
    if k == "question":
        if not isinstance(v, bool):
            raise RuleSetError(path, rule, f"{fld}.question", "expected true/false")
        return {"question": v}
    raise AssertionError(k)


def _model_refs(node) -> set[str]:
    out: set[str] = set()
    if isinstance(node, dict):
        if "model" in node:
            out.add(node["model"])
        for v in node.values():
            out |= _model_refs(v)
    elif isinstance(node, list):
        for v in node:
            out |= _model_refs(v)
    return out


def _act_refs(node) -> set[str]:
    out: set[str] = set()
    if isinstance(node, dict):
        for k, v in node.items():
            if k in ("act", "turn_has"):
                out.add(v)
            else:
                out |= _act_refs(v)
    elif isinstance(node, list):
        for v in node:
            out |= _act_refs(v)
    return out


def _cond(node: Any, acts: Mapping[str, Act], path, rule: str, fld: str) -> Any:
    """Validate a call-level condition (checks and risks)."""
    if not isinstance(node, Mapping) or len(node) != 1:
        raise RuleSetError(path, rule, fld, f"expected a mapping with one of {sorted(_COND_KEYS)}, got {node!r}")
    (k, v), = node.items()
    if k not in _COND_KEYS:
        raise RuleSetError(path, rule, fld, f"unknown condition {k!r}; expected one of {sorted(_COND_KEYS)}")
    if k == "has":
        if v not in acts:
            raise RuleSetError(path, rule, f"{fld}.has", f"unknown act {v!r}")
        return {"has": v}
    if k == "not":
        return {"not": _cond(v, acts, path, rule, f"{fld}.not")}
    if k in ("all", "any"):
        if not isinstance(v, list) or not v:
            raise RuleSetError(path, rule, f"{fld}.{k}", "expected a non-empty list")
        return {k: [_cond(x, acts, path, rule, f"{fld}.{k}[{i}]") for i, x in enumerate(v)]}
    if k == "before":
        if not isinstance(v, list) or len(v) != 2:
            raise RuleSetError(path, rule, f"{fld}.before", "expected [FIRST_ACT(S), SECOND_ACT(S)]")
        sides = []
        for i, side in enumerate(v):
            names = [side] if isinstance(side, str) else side
            if not isinstance(names, list) or not names:
                raise RuleSetError(path, rule, f"{fld}.before[{i}]", "expected an act name or a list of act names")
            for n in names:
                if n not in acts:
                    raise RuleSetError(path, rule, f"{fld}.before[{i}]", f"unknown act {n!r}")
            sides.append(tuple(names))
        return {"before": tuple(sides)}
    if k == "unanswered_concern":
        if v is not True:
            raise RuleSetError(path, rule, fld, "unanswered_concern takes true")
        return {"unanswered_concern": True}
    raise AssertionError(k)


def _anchors(v, acts, path, rule, fld) -> tuple[str, ...]:
    if v is None:
        return ()
    if isinstance(v, str):
        v = [v]
    if not isinstance(v, list):
        raise RuleSetError(path, rule, fld, "expected a list of act names")
    for n in v:
        if n not in acts and n not in BUILTIN_ANCHORS:
            raise RuleSetError(path, rule, fld, f"unknown act {n!r}")
    return tuple(v)


def _text(d, key, path, rule, required=True, prefix=None) -> str:
    v = d.get(key)
    if v is None:
        if required:
            raise RuleSetError(path, rule, key, "missing")
        return ""
    if not isinstance(v, str) or not v.strip():
        raise RuleSetError(path, rule, key, "expected non-empty text")
    if prefix and not v.startswith(prefix):
        raise RuleSetError(path, rule, key, f"must start with {prefix!r}")
    return v


def parse_ruleset(data: bytes, path: str | Path = "<memory>") -> RuleSet:
    path = str(path)
    try:
        raw = yaml.safe_load(data)
    except yaml.YAMLError as e:
        raise RuleSetError(path, "<file>", "<yaml>", f"not valid YAML: {e}") from None
    if not isinstance(raw, dict):
        raise RuleSetError(path, "<file>", "<root>", "expected a mapping at the top level")
    name = _req(raw, "ruleset", path, "<file>", str)
    human = str(_req(raw, "version", path, "<file>"))
    if not re.fullmatch(r"[0-9A-Za-z][0-9A-Za-z.\-]*", human):
        raise RuleSetError(path, "<file>", "version", f"bad version {human!r}")
    macros = raw.get("macros") or {}
    if not isinstance(macros, dict) or not all(isinstance(v, str) for v in macros.values()):
        raise RuleSetError(path, "macros", "macros", "expected a mapping NAME: regex")
    macros = dict(macros)
    unknown_top = set(raw) - _TOP_KEYS
    if unknown_top:
        raise RuleSetError(path, "<file>", sorted(unknown_top)[0],
                           f"unknown top-level field; expected only {sorted(_TOP_KEYS)}")
    # acts ---------------------------------------------------------------------------
    acts_raw = _req(raw, "acts", path, "<file>", dict)
    acts: dict[str, Act] = {}
    for an, ad in acts_raw.items():
        rule = f"acts.{an}"
        if not isinstance(ad, dict):
            raise RuleSetError(path, rule, "<act>", "expected a mapping")
        sp = ad.get("speaker", "any")
        if sp not in SPEAKERS:
            raise RuleSetError(path, rule, "speaker", f"expected one of {SPEAKERS}, got {sp!r}")
        when = _leaf(_req(ad, "when", path, rule), macros, path, rule, "when")
        extra = set(ad) - {"speaker", "when"}
        if extra:
            raise RuleSetError(path, rule, sorted(extra)[0], "unknown field")
        for m in _model_refs(when):
            if sp != "any" and ACT_SPEAKER[m] != sp:
                raise RuleSetError(path, rule, "when", f"model act {m!r} is said by the "
                                   f"{ACT_SPEAKER[m]}, but this act's speaker is {sp!r}")
        acts[an] = Act(an, sp, when)

    # concerns become two acts each: concern.X (customer), answer.X (agent)
    concerns: dict[str, Concern] = {}
    for cn, cd in (raw.get("concerns") or {}).items():
        rule = f"concerns.{cn}"
        if not isinstance(cd, dict):
            raise RuleSetError(path, rule, "<concern>", "expected a mapping")
        r = _check_regex(_expand(_req(cd, "raise", path, rule, str), macros, path, rule, "raise"), path, rule, "raise")
        a = _check_regex(_expand(_req(cd, "answer", path, rule, str), macros, path, rule, "answer"), path, rule, "answer")
        concerns[cn] = Concern(cn, str(cd.get("label", cn)), r, a)
        # the topic and the cue may sit in different sentences of one turn ("There's a late
        # fee on there now. Can you take that off?")
        cue = [{"turn_has": "concern_cue"}] if "concern_cue" in acts_raw else []
        acts[f"concern.{cn}"] = Act(f"concern.{cn}", "customer", {"all": [{"re": r}] + cue})
        acts[f"answer.{cn}"] = Act(f"answer.{cn}", "agent", {"re": a})

    direct_within = 0
    within_turns = 3
    topics_decide = True
    ca = raw.get("concern_answers")
    if ca is not None:
        rule = "concern_answers"
        if not isinstance(ca, dict):
            raise RuleSetError(path, rule, "<mapping>", "expected a mapping")
        extra = set(ca) - {"direct", "within", "within_turns", "topics_decide"}
        if extra:
            raise RuleSetError(path, rule, sorted(extra)[0], "unknown field")
        d = _check_regex(_expand(_req(ca, "direct", path, rule, str), macros, path, rule, "direct"), path, rule, "direct")
        w = _req(ca, "within", path, rule)
        if not isinstance(w, int) or isinstance(w, bool) or not 1 <= w <= 20:
            raise RuleSetError(path, rule, "within", "expected a whole number of sentences, 1 to 20")
        direct_within = w
        wt = ca.get("within_turns", 3)
        if not isinstance(wt, int) or isinstance(wt, bool) or not 1 <= wt <= 50:
            raise RuleSetError(path, rule, "within_turns", "expected a whole number of agent turns, 1 to 50")
        within_turns = wt
        td = ca.get("topics_decide", True)
        if not isinstance(td, bool):
            raise RuleSetError(path, rule, "topics_decide", "expected true or false")
        topics_decide = td
        acts["answer.direct"] = Act("answer.direct", "agent", {"re": d})
        acts["concern.question"] = Act("concern.question", "customer", {"question": True})

    # references and dependency order
    order: list[str] = []
    state: dict[str, int] = {}

    def visit(n: str, chain: tuple[str, ...]):
        if state.get(n) == 2:
            return
        if state.get(n) == 1:
            raise RuleSetError(path, f"acts.{n}", "when", f"cyclic act reference: {' -> '.join(chain + (n,))}")
        state[n] = 1
        for ref in sorted(_act_refs(acts[n].when)):
            if ref not in acts:
                raise RuleSetError(path, f"acts.{n}", "when", f"unknown act {ref!r}")
            visit(ref, chain + (n,))
        state[n] = 2
        order.append(n)
    for n in acts:
        visit(n, ())

    # call types ---------------------------------------------------------------------
    ct_raw = _req(raw, "call_types", path, "<file>", dict)
    checks_raw = raw.get("checks") or {}
    risks_raw = raw.get("risks") or {}
    if set(ct_raw) != set(CALL_TYPES):
        raise RuleSetError(path, "call_types", "<keys>", f"expected exactly {list(CALL_TYPES)}, got {sorted(ct_raw)}")
    call_types: dict[str, CallTypeSpec] = {}
    for ctn, ctd in ct_raw.items():
        rule = f"call_types.{ctn}"
        tr = _req(ctd, "talk_ratio", path, rule, list)
        if (len(tr) != 2 or not all(isinstance(x, (int, float)) for x in tr)
                or not (0 <= tr[0] <= tr[1] <= 1)):
            raise RuleSetError(path, rule, "talk_ratio", f"expected [lo, hi] with 0 <= lo <= hi <= 1, got {tr!r}")
        cks = ctd.get("checks") or []
        rks = ctd.get("risks") or []
        for c in cks:
            if c not in checks_raw:
                raise RuleSetError(path, rule, "checks", f"unknown check {c!r}")
        for r in rks:
            if r not in risks_raw:
                raise RuleSetError(path, rule, "risks", f"unknown risk {r!r}")
        call_types[ctn] = CallTypeSpec(ctn, (float(tr[0]), float(tr[1])), tuple(cks), tuple(rks))

    # checks and risks -----------------------------------------------------------------
    def area(d, rule):
        a = d.get("area")
        if a not in AREAS:
            raise RuleSetError(path, rule, "area", f"expected one of {AREAS}, got {a!r}")
        return a

    checks: dict[str, Rule] = {}
    for cn, cd in checks_raw.items():
        rule = f"checks.{cn}"
        if not isinstance(cd, dict):
            raise RuleSetError(path, rule, "<check>", "expected a mapping")
        extra = set(cd) - {"pass", "na", "evidence", "fail_evidence", "na_evidence", "area", "issue",
                           "suggestion", "strength"}
        if extra:
            raise RuleSetError(path, rule, sorted(extra)[0], "unknown field")
        checks[cn] = Rule(
            cn, "check", _cond(_req(cd, "pass", path, rule), acts, path, rule, "pass"),
            na=_cond(cd["na"], acts, path, rule, "na") if cd.get("na") is not None else None,
            evidence=_anchors(cd.get("evidence"), acts, path, rule, "evidence"),
            fail_evidence=_anchors(cd.get("fail_evidence"), acts, path, rule, "fail_evidence"),
            na_evidence=_anchors(cd.get("na_evidence"), acts, path, rule, "na_evidence"),
            area=area(cd, rule), issue=_text(cd, "issue", path, rule),
            suggestion=_text(cd, "suggestion", path, rule, prefix="Try:"),
            strength=_text(cd, "strength", path, rule))
    risks: dict[str, Rule] = {}
    for rn, rd in risks_raw.items():
        rule = f"risks.{rn}"
        if not isinstance(rd, dict):
            raise RuleSetError(path, rule, "<risk>", "expected a mapping")
        extra = set(rd) - {"when", "evidence", "area", "issue", "suggestion"}
        if extra:
            raise RuleSetError(path, rule, sorted(extra)[0], "unknown field")
        risks[rn] = Rule(
            rn, "risk", _cond(_req(rd, "when", path, rule), acts, path, rule, "when"),
            evidence=_anchors(rd.get("evidence"), acts, path, rule, "evidence"),
            area=area(rd, rule), issue=_text(rd, "issue", path, rule),
            suggestion=_text(rd, "suggestion", path, rule, prefix="Try:"))
    for rn, r in risks.items():
        if "unanswered_concern" in repr(r.when) and not concerns:
            raise RuleSetError(path, f"risks.{rn}", "when", "unanswered_concern needs a 'concerns' section")

    # classifier ---------------------------------------------------------------------
    # The call type comes from the act model's call head; the rule set says how sure it
    # must be before a call leaves the default type, standard.
    cl = _req(raw, "classify", path, "<file>", dict)
    extra = set(cl) - {"min_confidence"}
    if extra:
        raise RuleSetError(path, "classify", sorted(extra)[0], "unknown field; expected min_confidence")
    mc = _req(cl, "min_confidence", path, "classify", dict)
    if set(mc) != {"escalation", "handoff"}:
        raise RuleSetError(path, "classify", "min_confidence",
                           f"expected escalation and handoff, got {sorted(mc)}")
    for ctn, v in mc.items():
        if not isinstance(v, (int, float)) or isinstance(v, bool) or not 0 < v < 1:
            raise RuleSetError(path, "classify", f"min_confidence.{ctn}", "expected a probability in (0, 1)")

    # tone ---------------------------------------------------------------------------
    tone = _req(raw, "tone", path, "<file>", dict)
    for tn, keys in (("empathy", ("act", "medium", "high")), ("confidence", ("act", "medium", "low")),
                     ("jargon", ("act", "some", "heavy")), ("interruptions", ("min_overlap_s",))):
        d = _req(tone, tn, path, "tone", dict)
        for k in keys:
            v = _req(d, k, path, f"tone.{tn}")
            if k == "act":
                if v not in acts:
                    raise RuleSetError(path, f"tone.{tn}", "act", f"unknown act {v!r}")
            elif not isinstance(v, (int, float)) or isinstance(v, bool):
                raise RuleSetError(path, f"tone.{tn}", k, "expected a number")
    ti = tone["interruptions"]
    extra = set(ti) - {"min_overlap_s", "max_pause_s", "backchannel", "backchannel_words"}
    if extra:
        raise RuleSetError(path, "tone.interruptions", sorted(extra)[0], "unknown field")
    if "backchannel" in ti:
        _check_regex(ti["backchannel"], path, "tone.interruptions", "backchannel")
    bw = ti.get("backchannel_words", 0)
    if not isinstance(bw, int) or isinstance(bw, bool) or not 0 <= bw <= 10:
        raise RuleSetError(path, "tone.interruptions", "backchannel_words", "expected a whole number 0 to 10")
    mp = tone["interruptions"].get("max_pause_s", 0.0)
    if not isinstance(mp, (int, float)) or isinstance(mp, bool) or mp < 0:
        raise RuleSetError(path, "tone.interruptions", "max_pause_s", "expected a number >= 0")

    # sequence -----------------------------------------------------------------------
    seq_raw = _req(raw, "sequence", path, "<file>", dict)
    if list(seq_raw) != list(SEQUENCE_STEPS):
        raise RuleSetError(path, "sequence", "<keys>", f"expected steps {list(SEQUENCE_STEPS)} in that order")
    sequence = {k: _anchors(v, acts, path, "sequence", k) for k, v in seq_raw.items()}

    # coaching text ------------------------------------------------------------------
    coaching = _req(raw, "coaching", path, "<file>", dict)
    for cn in ("interruption", "talk_ratio_high", "talk_ratio_low"):
        d = _req(coaching, cn, path, "coaching", dict)
        area(d, f"coaching.{cn}")
        _text(d, "issue", path, f"coaching.{cn}")
        _text(d, "suggestion", path, f"coaching.{cn}", prefix="Try:")
    _text(coaching, "strength_suggestion", path, "coaching", prefix="Try:")

    sha = hashlib.sha256(data).hexdigest()
    return RuleSet(name=name, human_version=human, sha256=sha, path=path, acts=acts,
                   direct_answer_within=direct_within, answer_within_turns=within_turns,
                   topics_decide=topics_decide,
                   act_order=tuple(order), concerns=concerns, call_types=call_types,
                   classify=cl, tone=tone, sequence=sequence, checks=checks, risks=risks,
                   coaching=coaching, raw=raw)


_CACHE: dict[tuple[str, str], RuleSet] = {}


def load_versioned(path: Path, parse, error, cache: dict):
    """Read a versioned data file and parse it once per (path, content hash): an edited
    file is parsed again, an unchanged one is not.  ``error(path, rule, field, message)``
    is raised when the file cannot be read."""
    try:
        data = path.read_bytes()
    except OSError as e:
        raise error(path, "<file>", "<file>", f"cannot read: {e}") from None
    key = (str(path.resolve()), hashlib.sha256(data).hexdigest())
    got = cache.get(key)
    if got is None:
        got = cache[key] = parse(data, path)
    return got


def load_ruleset(path: str | Path) -> RuleSet:
    """Load and validate one rule file (fails fast with RuleSetError)."""
    return load_versioned(Path(path), parse_ruleset, RuleSetError, _CACHE)


def default_ruleset() -> RuleSet:
    return load_ruleset(DEFAULT_RULES)
