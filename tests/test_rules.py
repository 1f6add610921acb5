"""Rule sets: version = human + content hash; malformed files fail fast naming file, rule, field."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from callcoach.coaching.rules import DEFAULT_RULES, RuleSetError, default_ruleset, load_ruleset
from callcoach.contract import CHECKS_BY_CALL_TYPE, RISKS


def test_default_version_names_human_version_and_hash():
    rs = default_ruleset()
    assert re.fullmatch(r"\d{4}\.\d+\.\d+-[0-9a-f]{8}", rs.version)
    assert rs.version.startswith(yaml.safe_load(DEFAULT_RULES.read_text())["version"] + "-")


def test_default_covers_the_contract():
    rs = default_ruleset()
    for ct, names in CHECKS_BY_CALL_TYPE.items():
        assert tuple(rs.call_types[ct].checks) == names
    assert set(rs.risks) == set(RISKS)
    assert rs.call_types["standard"].risks == ("concern_not_addressed",)
    assert rs.call_types["escalation"].talk_ratio == (0.30, 0.40)
    assert rs.call_types["handoff"].talk_ratio == (0.40, 0.55)
    assert rs.call_types["standard"].talk_ratio == (0.40, 0.60)


def test_content_change_changes_hash(tmp_path):
    text = DEFAULT_RULES.read_text()
    p = tmp_path / "r.yaml"
    p.write_text(text.replace("min_overlap_s: 0.25", "min_overlap_s: 0.3"))
    a, b = default_ruleset(), load_ruleset(p)
    assert a.human_version == b.human_version and a.version != b.version


def _broken(tmp_path, mutate) -> Path:
    d = yaml.safe_load(DEFAULT_RULES.read_text())
    mutate(d)
    p = tmp_path / "broken.yaml"
    p.write_text(yaml.safe_dump(d, sort_keys=False))
    return p


@pytest.mark.parametrize("mutate,rule,field", [
    (lambda d: d["acts"]["acknowledge"].update(speaker="robot"), "acts.acknowledge", "speaker"),
    (lambda d: d["acts"]["jargon"].update(when={"re": "(unclosed"}), "acts.jargon", "when.re"),
    (lambda d: d["acts"]["jargon"].update(when={"re": "(?<=x)y"}), "acts.jargon", "when.re"),
    (lambda d: d["acts"]["jargon"].update(when={"model": "no_such_act", "min": 0.5}), "acts.jargon", "when.model"),
    (lambda d: d["acts"]["jargon"].update(when={"model": "hedge", "min": "high"}), "acts.jargon", "when.min"),
    (lambda d: d["acts"]["jargon"].update(when={"model": "hedge", "min": 1.5}), "acts.jargon", "when.min"),
    # an old act-bank leaf is refused with a pointer to what replaced it
    (lambda d: d["acts"]["jargon"].update(when={"sem": "hedge", "min": 500}), "acts.jargon", "when"),
    # a customer act read for an agent act is a mistake in the rule file
    (lambda d: d["acts"]["jargon"].update(when={"model": "upset", "min": 0.5}), "acts.jargon", "when"),
    (lambda d: d.update(thresholds={"x": 1}), "<file>", "thresholds"),
    (lambda d: d["classify"].update(min_confidence={"escalation": 0.5}), "classify", "min_confidence"),
    (lambda d: d["classify"]["min_confidence"].update(handoff=2), "classify", "min_confidence.handoff"),
    (lambda d: d["classify"].update(signals={}), "classify", "signals"),
    (lambda d: d["acts"]["jargon"].update(when={"act": "missing_act"}), "acts.jargon", "when"),
    (lambda d: d["acts"]["jargon"].update(when={"re": "<<NOPE>>"}), "acts.jargon", "when.re"),
    (lambda d: d["checks"]["warm_handoff"].update(area="vibes"), "checks.warm_handoff", "area"),
    (lambda d: d["checks"]["warm_handoff"].update(suggestion="Do better"), "checks.warm_handoff", "suggestion"),
    (lambda d: d["checks"]["warm_handoff"].update({"pass": {"has": "telepathy"}}), "checks.warm_handoff", "pass.has"),
    (lambda d: d["checks"]["warm_handoff"].pop("pass"), "checks.warm_handoff", "pass"),
    (lambda d: d["risks"]["no_follow_up_scheduled"].update(when={"sometimes": True}), "risks.no_follow_up_scheduled", "when"),
    (lambda d: d["call_types"]["handoff"].update(talk_ratio=[0.6, 0.4]), "call_types.handoff", "talk_ratio"),
    (lambda d: d["call_types"]["handoff"]["checks"].append("not_a_check"), "call_types.handoff", "checks"),
    (lambda d: d["tone"]["empathy"].update(high="lots"), "tone.empathy", "high"),
    (lambda d: d["tone"]["interruptions"].update(max_pause_s=-1), "tone.interruptions", "max_pause_s"),
    (lambda d: d["concern_answers"].update(within=0), "concern_answers", "within"),
    (lambda d: d["concern_answers"].update(direct="(unclosed"), "concern_answers", "direct"),
    (lambda d: d["concern_answers"].update(sometimes=True), "concern_answers", "sometimes"),
])
def test_malformed_rule_fails_fast_naming_file_rule_field(tmp_path, mutate, rule, field):
    p = _broken(tmp_path, mutate)
    with pytest.raises(RuleSetError) as ei:
        load_ruleset(p)
    msg = str(ei.value)
    assert str(p) in msg and f"rule '{rule}'" in msg and f"field '{field}'" in msg, msg


def test_cyclic_acts_rejected(tmp_path):
    def mutate(d):
        d["acts"]["jargon"]["when"] = {"act": "hedge"}
        d["acts"]["hedge"]["when"] = {"act": "jargon"}
    with pytest.raises(RuleSetError, match="cyclic"):
        load_ruleset(_broken(tmp_path, mutate))


def test_not_yaml(tmp_path):
    p = tmp_path / "x.yaml"
    p.write_text("acts: [unclosed")
    with pytest.raises(RuleSetError, match="not valid YAML"):
        load_ruleset(p)
