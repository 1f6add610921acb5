"""The categories file: versioned like a rule set, validated fail-fast with the entry and
field named, act references checked against the scoring rule set."""

from __future__ import annotations

import hashlib
import re

import pytest

from callcoach.coaching.rules import default_ruleset
from callcoach.insights.categories import (DEFAULT_CATEGORIES, TRIGGER_NAMES, CategoriesError,
                                           default_categories, load_categories, parse_categories)

BASE = DEFAULT_CATEGORIES.read_text()
HUMAN = re.search(r'^version: "([^"]+)"', BASE, re.M).group(1)   # e.g. 2026.11.1


def test_default_file_loads_with_a_content_version():
    c = default_categories()
    data = DEFAULT_CATEGORIES.read_bytes()
    assert c.version == f"{HUMAN}-{hashlib.sha256(data).hexdigest()[:8]}"
    assert re.fullmatch(r"[0-9A-Za-z.\-]+", c.version)
    assert list(c.categories) == ["outage", "billing", "delivery", "account_access", "fraud",
                                  "product_defect", "cancellation", "appointment"]
    assert set(c.triggers) == set(TRIGGER_NAMES) and sorted(c.trigger_order) == sorted(TRIGGER_NAMES)
    assert c.acts_used() == {"specific_commitment", "transfer", "cause_unknown", "ask_manager",
                             "upset", "cancel_threat"}
    c.check_acts(default_ruleset())                    # every act it reads exists
    assert load_categories() is c                      # cached by path and content


def test_a_change_changes_the_version(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text(BASE.replace("weight: 2.5", "weight: 2.4", 1))
    assert load_categories(p).version != default_categories().version
    assert load_categories(p).version.startswith(f"{HUMAN}-")


@pytest.mark.parametrize("edit,entry,field", [
    ((f"version: \"{HUMAN}\"", "version: \"bad version\""), "<file>", "version"),
    (("  outage:\n    label: Outage / service down\n", "  outage:\n    label: Outage / service down\n    colour: red\n"),
     "categories.outage", "colour"),
    (("        weight: 2.5\n", "        weight: lots\n"), "categories.billing.cues[0]", "weight"),
    (("  fraud:\n    label: Fraud and security\n    cues:\n      - re: '",
      "  fraud:\n    label: Fraud and security\n    cues:\n      - speaker: caller\n        re: '"),
     "categories.fraud.cues[0]", "speaker"),
    (("  fraud:\n    label: Fraud and security\n    cues:\n      - re: '",
      "  fraud:\n    label: Fraud and security\n    cues:\n      - re: '(?<=x)y|"),
     "categories.fraud.cues[0]", "re.re"),
    (("  fraud:\n    label: Fraud and security\n    cues:\n      - re: '",
      "  fraud:\n    label: Fraud and security\n    cues:\n      - re: '<<NOPE>>|"),
     "categories.fraud.cues[0]", "re.re"),
])
def test_malformed_files_name_entry_and_field(edit, entry, field):
    old, new = edit
    assert old in BASE
    with pytest.raises(CategoriesError) as e:
        parse_categories(BASE.replace(old, new, 1).encode(), "x.yaml")
    assert (e.value.entry, e.value.field) == (entry, field), str(e.value)
    assert str(e.value).startswith("x.yaml: ")


@pytest.mark.parametrize("old,new,entry,field", [
    ("  order: [lack_of_authority, specialised_help, complexity, emotional_state]",
     "  order: [lack_of_authority, specialised_help, complexity]", "triggers", "order"),
    ("      - tier: stated\n", "      - tier: guessed\n", "triggers.lack_of_authority.cues[0]", "tier"),
    ("  complexity:\n    label: Complexity of the issue\n", "  complexity_x:\n    label: Complexity of the issue\n",
     "triggers.complexity", "<trigger>"),
    ("(?P<ref>", "(?P<code>", "tickets", "pattern"),
    ("  pm_below: 8 ", "  pm_below: 13 ", "commitments", "pm_below"),
    ("end_of_day: \"17:00\"", "end_of_day: \"5pm\"", "commitments", "day_parts.end_of_day"),
    ("  fallback: other\n", "  fallback: billing\n", "categories.billing", "<name>"),
    ("\ncategories:\n", "\ncategories:\n  Bad-Name:\n    label: x\n    cues: [{re: 'x'}]\n", "categories.Bad-Name", "<name>"),
    ("\ntickets:\n", "\nextras: {}\ntickets:\n", "<file>", "extras"),
])
def test_more_malformed_fields(old, new, entry, field):
    assert old in BASE, old
    with pytest.raises(CategoriesError) as e:
        parse_categories(BASE.replace(old, new, 1).encode(), "x.yaml")
    assert (e.value.entry, e.value.field) == (entry, field), str(e.value)


def test_unknown_rule_set_act_fails_when_bound():
    c = parse_categories(BASE.replace("act: cause_unknown", "act: no_such_act").encode(), "x.yaml")
    with pytest.raises(CategoriesError, match="no_such_act"):
        c.check_acts(default_ruleset())


def test_not_yaml_and_missing_file(tmp_path):
    with pytest.raises(CategoriesError, match="not valid YAML"):
        parse_categories(b"insights: [", "x.yaml")
    with pytest.raises(CategoriesError, match="cannot read"):
        load_categories(tmp_path / "missing.yaml")
