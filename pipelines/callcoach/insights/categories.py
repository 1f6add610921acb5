"""Issue categories, escalation triggers, ticket and commitment patterns: versioned data.

``pipelines/callcoach/rules/categories.yaml`` (format in docs/insights.md) is loaded and validated
fail-fast, like a rule set: every malformed field raises ``CategoriesError`` naming the
file, the entry and the field.  ``Categories.version`` is ``"<version>-<first 8 hex of the
sha256 of the file's bytes>"`` and is written into every insight row, so a change of the
file (a team adding its own category) is seen by the nightly run and backfilled by
``rescore``.

Conditions are written in the rule-set condition language and validated by the same code
(``callcoach.coaching.rules``); ``act: NAME`` leaves read acts of the scoring rule set,
checked when the categories are bound to one (``check_acts``).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import yaml

from ..coaching.rules import (RULES_DIR, RuleSet, RuleSetError, _act_refs, _check_regex, _expand, _leaf,
                              load_versioned)

DEFAULT_CATEGORIES = RULES_DIR / "categories.yaml"
TRIGGER_NAMES = ("complexity", "lack_of_authority", "specialised_help", "emotional_state")
TIERS = ("stated", "inferred")
CUE_SPEAKERS = ("agent", "customer", "any")


class CategoriesError(ValueError):
    """The categories file is malformed.  The message names file, entry and field."""

    def __init__(self, path: str | Path, entry: str, field_: str, message: str):
        self.path, self.entry, self.field = str(path), entry, field_
        super().__init__(f"{path}: '{entry}': field '{field_}': {message}")


@dataclass(frozen=True)
class Cue:
    when: Any              # validated condition tree (rule-set language)
    weight: float
    speaker: str           # agent | customer | any
    tier: str = "stated"   # triggers only


@dataclass(frozen=True)
class Category:
    name: str
    label: str
    cues: tuple[Cue, ...]
    teams: tuple[str, ...] = ()     # empty: every team


@dataclass(frozen=True)
class Trigger:
    name: str
    label: str
    cues: tuple[Cue, ...]


@dataclass(frozen=True)
class Categories:
    name: str
    human_version: str
    sha256: str
    path: str
    categories: dict[str, Category]           # file order = tie order
    speaker_weight: dict[str, float]
    opening_sentences: int
    opening_boost: float
    min_score: float
    fallback: str
    confidence_scale: float
    triggers: dict[str, Trigger]
    trigger_order: tuple[str, ...]
    trigger_applies_to: tuple[str, ...]
    tier_factor: dict[str, float]
    trigger_fallback: dict[str, str]
    ticket_re: re.Pattern
    ticket_drop_prefix: frozenset[str]
    ticket_min_length: int
    commitment_when: Any
    commitment_agent_re: str
    commitment_team_re: str
    pm_below: int
    day_parts: dict[str, str]
    raw: dict[str, Any] = field(repr=False, default_factory=dict)

    @property
    def version(self) -> str:
        return f"{self.human_version}-{self.sha256[:8]}"

    @property
    def labels(self) -> dict[str, str]:
        return {n: c.label for n, c in self.categories.items()}

    def acts_used(self) -> set[str]:
        """Acts of the scoring rule set that these conditions read."""
        out = set(_act_refs(self.commitment_when))
        for c in self.categories.values():
            for q in c.cues:
                out |= _act_refs(q.when)
        for t in self.triggers.values():
            for q in t.cues:
                out |= _act_refs(q.when)
        return out

    def check_acts(self, ruleset: RuleSet) -> None:
        """Fail fast when a condition reads an act the rule set does not define."""
        missing = sorted(self.acts_used() - set(ruleset.acts))
        if missing:
            raise CategoriesError(self.path, "<acts>", "act",
                                  f"act(s) {missing} not defined by rule set {ruleset.version}")


def _num(d: Mapping, key: str, path, entry: str, lo: float | None = None, hi: float | None = None,
         default: Any = None) -> float:
    v = d.get(key, default)
    if v is None:
        raise CategoriesError(path, entry, key, "missing")
    if not isinstance(v, (int, float)) or isinstance(v, bool):
        raise CategoriesError(path, entry, key, f"expected a number, got {v!r}")
    if (lo is not None and v < lo) or (hi is not None and v > hi):
        raise CategoriesError(path, entry, key, f"expected a number in {lo}..{hi}, got {v!r}")
    return float(v)


def _wrap(fn, path, entry: str, fld: str):
    try:
        return fn()
    except RuleSetError as e:   # same checks as a rule set; re-raised naming this file's entry
        raise CategoriesError(path, e.rule or entry, e.field or fld,
                              str(e).split(f"field '{e.field}': ", 1)[-1]) from None


def _cue(d: Any, macros: Mapping[str, str], path, entry: str, tiers: bool) -> Cue:
    if not isinstance(d, Mapping):
        raise CategoriesError(path, entry, "<cue>", f"expected a mapping, got {d!r}")
    allowed = {"re", "when", "act", "weight", "speaker", "unless"} | ({"tier"} if tiers else set())
    extra = set(d) - allowed
    if extra:
        raise CategoriesError(path, entry, sorted(extra)[0], "unknown field")
    kinds = [k for k in ("re", "when", "act") if k in d]
    if len(kinds) != 1:
        raise CategoriesError(path, entry, "re", "a cue has exactly one of 're', 'when', 'act'")
    k = kinds[0]
    if k == "re":
        node: Any = {"re": d["re"]}
    elif k == "act":
        if not isinstance(d["act"], str):
            raise CategoriesError(path, entry, "act", "expected an act name")
        node = {"act": d["act"]}
    else:
        node = d["when"]
    when = _wrap(lambda: _leaf(node, macros, path, entry, k), path, entry, k)
    if "unless" in d:
        unless = _wrap(lambda: _leaf({"re": d["unless"]}, macros, path, entry, "unless"), path, entry, "unless")
        when = {"all": [when, {"not": unless}]}
    weight = _num(d, "weight", path, entry, 0.0, 100.0, default=1.0)
    speaker = d.get("speaker", "any")
    if speaker not in CUE_SPEAKERS:
        raise CategoriesError(path, entry, "speaker", f"expected one of {CUE_SPEAKERS}, got {speaker!r}")
    tier = d.get("tier", "stated")
    if tiers and tier not in TIERS:
        raise CategoriesError(path, entry, "tier", f"expected one of {TIERS}, got {tier!r}")
    return Cue(when, weight, speaker, tier)


def parse_categories(data: bytes, path: str | Path = "<memory>") -> Categories:
    path = str(path)
    try:
        raw = yaml.safe_load(data)
    except yaml.YAMLError as e:
        raise CategoriesError(path, "<file>", "<yaml>", f"not valid YAML: {e}") from None
    if not isinstance(raw, dict):
        raise CategoriesError(path, "<file>", "<root>", "expected a mapping at the top level")
    name = raw.get("insights")
    if not isinstance(name, str) or not name:
        raise CategoriesError(path, "<file>", "insights", "missing name")
    human = str(raw.get("version", ""))
    if not re.fullmatch(r"[0-9A-Za-z][0-9A-Za-z.\-]*", human):
        raise CategoriesError(path, "<file>", "version", f"bad version {human!r}")
    macros = raw.get("macros") or {}
    if not isinstance(macros, dict) or not all(isinstance(v, str) for v in macros.values()):
        raise CategoriesError(path, "macros", "macros", "expected a mapping NAME: regex")

    # scoring --------------------------------------------------------------------------
    sc = raw.get("scoring")
    if not isinstance(sc, dict):
        raise CategoriesError(path, "scoring", "scoring", "missing or not a mapping")
    sw = sc.get("speaker_weight")
    if not isinstance(sw, dict) or set(sw) != {"agent", "customer"}:
        raise CategoriesError(path, "scoring", "speaker_weight", "expected {agent: N, customer: N}")
    speaker_weight = {k: _num(sw, k, path, "scoring.speaker_weight", 0, 10) for k in sw}
    op = sc.get("opening") or {}
    if not isinstance(op, dict):
        raise CategoriesError(path, "scoring", "opening", "expected a mapping")
    opening_n = int(_num(op, "customer_sentences", path, "scoring.opening", 0, 100, default=0))
    opening_boost = _num(op, "boost", path, "scoring.opening", 0, 10, default=1.0)
    min_score = _num(sc, "min_score", path, "scoring", 0, 1000)
    fallback = sc.get("fallback", "other")
    if not isinstance(fallback, str) or not re.fullmatch(r"[a-z][a-z0-9_]*", fallback):
        raise CategoriesError(path, "scoring", "fallback", "expected a category name")
    conf_scale = _num(sc, "confidence_scale", path, "scoring", 0, 1000, default=2.0)

    # categories -------------------------------------------------------------------------
    cats_raw = raw.get("categories")
    if not isinstance(cats_raw, dict) or not cats_raw:
        raise CategoriesError(path, "categories", "categories", "expected a non-empty mapping")
    categories: dict[str, Category] = {}
    for cn, cd in cats_raw.items():
        entry = f"categories.{cn}"
        if not isinstance(cn, str) or not re.fullmatch(r"[a-z][a-z0-9_]*", cn):
            raise CategoriesError(path, entry, "<name>", "category names are snake_case")
        if cn == fallback:
            raise CategoriesError(path, entry, "<name>", f"'{fallback}' is the fallback category")
        if not isinstance(cd, dict):
            raise CategoriesError(path, entry, "<category>", "expected a mapping")
        extra = set(cd) - {"label", "cues", "teams"}
        if extra:
            raise CategoriesError(path, entry, sorted(extra)[0], "unknown field")
        label = cd.get("label")
        if not isinstance(label, str) or not label.strip():
            raise CategoriesError(path, entry, "label", "expected non-empty text")
        cues = cd.get("cues")
        if not isinstance(cues, list) or not cues:
            raise CategoriesError(path, entry, "cues", "expected a non-empty list")
        teams = cd.get("teams") or []
        if not isinstance(teams, list) or not all(isinstance(t, str) for t in teams):
            raise CategoriesError(path, entry, "teams", "expected a list of team names")
        categories[cn] = Category(cn, label, tuple(_cue(q, macros, path, f"{entry}.cues[{i}]", False)
                                                   for i, q in enumerate(cues)), tuple(teams))

    # triggers ---------------------------------------------------------------------------
    tr = raw.get("triggers")
    if not isinstance(tr, dict):
        raise CategoriesError(path, "triggers", "triggers", "missing or not a mapping")
    order = tuple(tr.get("order") or ())
    if sorted(order) != sorted(TRIGGER_NAMES):
        raise CategoriesError(path, "triggers", "order", f"expected a permutation of {list(TRIGGER_NAMES)}")
    applies = tuple(tr.get("applies_to") or ())
    if not applies or not set(applies) <= {"escalation", "handoff", "standard"}:
        raise CategoriesError(path, "triggers", "applies_to", "expected call types")
    tf = tr.get("tier_factor") or {}
    if not isinstance(tf, dict) or set(tf) != {"stated", "inferred", "fallback"}:
        raise CategoriesError(path, "triggers", "tier_factor", "expected {stated, inferred, fallback}")
    tier_factor = {k: _num(tf, k, path, "triggers.tier_factor", 0, 1) for k in tf}
    fb = tr.get("fallback") or {}
    if not isinstance(fb, dict) or not set(fb) <= set(applies) or not set(fb.values()) <= set(TRIGGER_NAMES):
        raise CategoriesError(path, "triggers", "fallback", "expected {CALL_TYPE: TRIGGER}")
    triggers: dict[str, Trigger] = {}
    for tn in TRIGGER_NAMES:
        td = tr.get(tn)
        entry = f"triggers.{tn}"
        if not isinstance(td, dict):
            raise CategoriesError(path, entry, "<trigger>", "missing or not a mapping")
        extra = set(td) - {"label", "cues"}
        if extra:
            raise CategoriesError(path, entry, sorted(extra)[0], "unknown field")
        cues = td.get("cues")
        if not isinstance(cues, list) or not cues:
            raise CategoriesError(path, entry, "cues", "expected a non-empty list")
        triggers[tn] = Trigger(tn, str(td.get("label", tn)),
                               tuple(_cue(q, macros, path, f"{entry}.cues[{i}]", True) for i, q in enumerate(cues)))
    extra = set(tr) - set(TRIGGER_NAMES) - {"order", "applies_to", "tier_factor", "fallback"}
    if extra:
        raise CategoriesError(path, "triggers", sorted(extra)[0], f"unknown trigger; expected {list(TRIGGER_NAMES)}")

    # tickets ----------------------------------------------------------------------------
    tk = raw.get("tickets")
    if not isinstance(tk, dict) or not isinstance(tk.get("pattern"), str):
        raise CategoriesError(path, "tickets", "pattern", "missing")
    pat = _expand(tk["pattern"], macros, path, "tickets", "pattern")
    try:
        ticket_re = re.compile(pat)
    except re.error as e:
        raise CategoriesError(path, "tickets", "pattern", f"invalid regex: {e}") from None
    if "ref" not in ticket_re.groupindex:
        raise CategoriesError(path, "tickets", "pattern", "needs a named group (?P<ref>...)")
    extra = set(tk) - {"pattern", "drop_prefix", "min_length"}
    if extra:
        raise CategoriesError(path, "tickets", sorted(extra)[0], "unknown field")
    min_len = int(_num(tk, "min_length", path, "tickets", 1, 64, default=4))
    drop = tk.get("drop_prefix") or []
    if not isinstance(drop, list) or not all(isinstance(x, str) for x in drop):
        raise CategoriesError(path, "tickets", "drop_prefix", "expected a list of words")

    # commitments ------------------------------------------------------------------------
    cm = raw.get("commitments")
    if not isinstance(cm, dict):
        raise CategoriesError(path, "commitments", "commitments", "missing or not a mapping")
    extra = set(cm) - {"when", "agent", "team", "pm_below", "day_parts"}
    if extra:
        raise CategoriesError(path, "commitments", sorted(extra)[0], "unknown field")
    if "when" not in cm:
        raise CategoriesError(path, "commitments", "when", "missing")
    cwhen = _wrap(lambda: _leaf(cm["when"], macros, path, "commitments", "when"), path, "commitments", "when")
    who_re = {}
    for k in ("agent", "team"):
        if not isinstance(cm.get(k), str):
            raise CategoriesError(path, "commitments", k, "expected a regex")
        who_re[k] = _wrap(lambda: _check_regex(_expand(cm[k], macros, path, "commitments", k),
                                               path, "commitments", k), path, "commitments", k)
    pm_below = int(_num(cm, "pm_below", path, "commitments", 1, 12, default=8))
    dp = cm.get("day_parts") or {}
    from .due import DEFAULT_DAY_PARTS
    if not isinstance(dp, dict) or not set(dp) <= set(DEFAULT_DAY_PARTS):
        raise CategoriesError(path, "commitments", "day_parts", f"expected keys of {sorted(DEFAULT_DAY_PARTS)}")
    for k, v in dp.items():
        if not isinstance(v, str) or not re.fullmatch(r"(?:[01]\d|2[0-3]):[0-5]\d", v):
            raise CategoriesError(path, "commitments", f"day_parts.{k}", f"expected HH:MM, got {v!r}")

    extra = set(raw) - {"insights", "version", "macros", "scoring", "categories", "triggers",
                        "tickets", "commitments"}
    if extra:
        raise CategoriesError(path, "<file>", sorted(extra)[0], "unknown section")
    return Categories(
        name=name, human_version=human, sha256=hashlib.sha256(data).hexdigest(), path=path,
        categories=categories, speaker_weight=speaker_weight, opening_sentences=opening_n,
        opening_boost=opening_boost, min_score=min_score, fallback=fallback,
        confidence_scale=conf_scale, triggers=triggers, trigger_order=order,
        trigger_applies_to=applies, tier_factor=tier_factor, trigger_fallback=dict(fb),
        ticket_re=ticket_re, ticket_drop_prefix=frozenset(drop), ticket_min_length=min_len, commitment_when=cwhen,
        commitment_agent_re=who_re["agent"], commitment_team_re=who_re["team"], pm_below=pm_below, day_parts={**DEFAULT_DAY_PARTS, **dp},
        raw=raw)


_CACHE: dict[tuple[str, str], Categories] = {}


def load_categories(path: str | Path | None = None) -> Categories:
    """Load and validate a categories file (default: pipelines/callcoach/rules/categories.yaml)."""
    p = Path(path) if path is not None else DEFAULT_CATEGORIES
    return load_versioned(p, parse_categories, CategoriesError, _CACHE)


def default_categories() -> Categories:
    return load_categories(DEFAULT_CATEGORIES)
