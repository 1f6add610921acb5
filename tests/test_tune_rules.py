"""The rule tuner's arithmetic (scripts/tune_rules.py, scripts/eval_engine.py): per-call counts
that add up to the evaluation's figures, and the bootstrap gate that keeps a threshold from
moving on the strength of one or two calls.  Synthetic reports: what is under test is the
counting and the gate, not the engine."""

from __future__ import annotations

import numpy as np
import pytest

from scripts import eval_engine
from scripts.tune_rules import better, objective_counts


def _report(cid, call_type, checks=(), risks=()):
    return {"call_id": cid, "call_type": call_type, "call_type_confidence": 0.9,
            "process_checks": [{"check": c, "passed": v} for c, v in checks],
            "risks": [{"risk": r} for r in risks]}


TRUTH = {
    "e1": {"labels": {"call_type": "escalation", "risks": ["no_follow_up_scheduled"],
                      "checks": {"issue_acknowledged": True, "follow_up_scheduled": False,
                                 "root_cause_explained": None}}},
    "h1": {"labels": {"call_type": "handoff", "risks": [],
                      "checks": {"warm_handoff": True, "issue_documented": False}}},
    "s1": {"labels": {"call_type": "standard", "risks": [], "checks": {}}},
    "s2": {"labels": {"call_type": "standard", "risks": ["concern_not_addressed"], "checks": {}}},
}
REPORTS = {
    # right type; one check wrong (None labelled, False given), the risk found
    "e1": _report("e1", "escalation", [("issue_acknowledged", True), ("follow_up_scheduled", False),
                                       ("root_cause_explained", False)], ["no_follow_up_scheduled"]),
    # typed escalation: its handoff checks are absent, a false risk
    "h1": _report("h1", "escalation", [], ["no_follow_up_scheduled"]),
    # routine call typed handoff with a false risk
    "s1": _report("s1", "handoff", [], ["customer_must_reexplain"]),
    # the unanswered question missed
    "s2": _report("s2", "standard", [], []),
}


def test_per_call_counts_add_up_to_the_evaluations_figures():
    m = eval_engine.evaluate(REPORTS, TRUTH)
    c = np.array([eval_engine.call_counts(REPORTS[k], TRUTH[k]["labels"]) for k in TRUTH]).sum(0)
    got = dict(zip(eval_engine.COUNTS, c))
    assert got["calls"] == m["calls"] == 4
    assert got["type_ok"] / got["calls"] == m["call_type_accuracy"] == 0.5
    assert got["checks_ok"] / got["checks"] == m["check_accuracy"] == 0.4   # 2 of 5
    assert abs(got["tp"] / (got["tp"] + got["fp"]) - m["risk_precision"]) < 1e-4
    assert m["risk_precision"] == round(1 / 3, 4)
    assert got["tp"] / (got["tp"] + got["fn"]) == m["risk_recall"] == 0.5
    assert got["standard_typed"] / got["standard"] == m["standard_typed_other"] == 0.5
    assert got["standard_false_risks"] / got["standard"] == m["standard_false_risks_per_call"] == 0.5
    # and the objective of the sums is that of the figures: 0.5 + 0.4 + F1(1/3, 1/2) - 0.5 - 0.5
    # - 5 * (0.5 - 0.02) - 5 * (0.5 - 0.05)
    f1 = 2 * (1 / 3) * 0.5 / (1 / 3 + 0.5)
    want = 0.5 + 0.4 + f1 - 0.5 - 0.5 - 5 * 0.48 - 5 * 0.45
    assert abs(float(objective_counts([c])) - want) < 1e-9


def _boot(per_call_gain: np.ndarray, n_boot: int = 400, seed: int = 3):
    """(full, per-resample) objectives of a candidate whose gain over the current value is
    the mean of per-call gains, against a current value of 0."""
    rng = np.random.default_rng(seed)
    n = len(per_call_gain)
    w = rng.multinomial(n, [1 / n] * n, size=n_boot)
    cand = (float(per_call_gain.mean()), w @ per_call_gain / n)
    cur = (0.0, np.zeros(n_boot))
    return cand, cur


def test_a_gain_resting_on_one_call_does_not_move_a_threshold():
    gain = np.zeros(100)
    gain[17] = 1.0                       # one call gets better, nothing else changes
    cand, cur = _boot(gain)
    assert cand[0] > cur[0]              # plain coordinate ascent would take it
    assert better(cand, cur, support=0.0)
    assert not better(cand, cur)         # the bootstrap gate does not


def test_a_gain_shared_by_many_calls_moves_it_and_a_net_loss_never_does():
    gain = np.zeros(100)
    gain[:12] = 1.0                      # twelve calls better, two worse
    gain[50:52] = -1.0
    cand, cur = _boot(gain)
    assert better(cand, cur)
    assert not better(cur, cand)
    worse = (cand[0] - 0.2, cand[1])     # a candidate that loses on the calls as a whole
    assert not better(worse, cur, support=0.0)


def test_a_gain_resting_on_one_author_does_not_move_a_threshold():
    """Calls gain overall and on the resamples, but two of five authors' calls lose: the
    per-author gate refuses the move; with one author losing it passes."""
    gain = np.zeros(100)
    gain[:20] = 1.0                      # author 0's calls gain a lot
    gain[20:28] = -0.5                   # authors 1 and 2 each lose a little
    gain[40:48] = -0.5
    cand, cur = _boot(gain)
    assert better(cand, cur)             # the bootstrap gate alone takes it
    per_author = gain.reshape(5, 20).sum(1)
    assert not better(cand + (per_author,), cur + (np.zeros(5),))
    assert better(cand + (per_author,), cur + (np.zeros(5),), max_authors_losing=2)
    one = per_author.copy()
    one[2] = 0.0                         # only one author loses
    assert better(cand + (one,), cur + (np.zeros(5),))


def test_the_tuner_scores_each_author_apart(monkeypatch):
    """evaluate's third element is the objective of each train author's calls alone: the
    counts of one author's calls give that author's objective and no other's."""
    from scripts import tune_rules
    calls = {"a-1": "author-a", "a-2": "author-a", "b-1": "author-b"}
    t = tune_rules.Tuner.__new__(tune_rules.Tuner)
    ids = list(calls)
    t.authors = ["author-a", "author-b"]
    t.author_masks = [np.array([[calls[c] == a for c in ids] for a in t.authors], dtype=float)]
    t.weights = [np.ones((3, 3))]
    t.typed_weights = None
    counts = np.array([eval_engine.call_counts(REPORTS[k], TRUTH[k]["labels"]) for k in ("e1", "s2", "s1")],
                      dtype=float)
    monkeypatch.setattr(t, "counts", lambda _text: ([counts], None), raising=False)
    full, boot, per_author = t.evaluate("")
    assert per_author.shape == (2,)
    assert per_author[0] == pytest.approx(float(objective_counts([counts[:2].sum(0)])))
    assert per_author[1] == pytest.approx(float(objective_counts([counts[2]])))
    assert full == pytest.approx(float(objective_counts([counts.sum(0)])))


def test_a_baseline_checkout_is_keyed_by_the_commit_a_revision_names_now():
    import subprocess
    head = subprocess.run(["git", "-C", str(eval_engine.ROOT), "rev-parse", "HEAD"],
                          capture_output=True, text=True, check=True).stdout.strip()
    assert eval_engine.baseline_worktree("HEAD").name == f"callcoach-baseline-{head[:12]}"
    assert eval_engine.baseline_worktree(head) == eval_engine.baseline_worktree("HEAD")
    with pytest.raises(subprocess.CalledProcessError):
        eval_engine.baseline_worktree("no-such-revision")


def test_candidate_rule_files_score_the_same_calls_each_under_its_own_rules(tmp_path):
    from test_acts import _call
    src = (eval_engine.ROOT / "pipelines" / "callcoach" / "rules" / "default.yaml").read_text()
    strict = tmp_path / "strict.yaml"
    # a rule set that never lets a call leave the default type
    from scripts.tune_rules import _set_conf
    strict_text = _set_conf(_set_conf(src, 0, 0.9999), 1, 0.9999)
    assert strict_text != src
    strict.write_text(strict_text)
    call = _call([("agent", "Thanks for calling, Dana speaking."),
                  ("customer", "This is the third time my heating has failed and I'm furious, "
                               "put me through to your supervisor this minute."),
                  ("agent", "I'm so sorry, let me get my team leader on the line.")])
    shipped = eval_engine.score_current([call])
    other = eval_engine.score_current([call], rules=strict)
    assert shipped["t"]["call_type"] == "escalation"
    assert other["t"]["call_type"] == "standard"
    assert other["t"]["ruleset_version"] != shipped["t"]["ruleset_version"]


def test_out_writes_the_tuned_candidate_and_leaves_the_rule_file_alone(tmp_path, monkeypatch):
    """`--out F` writes the tuned file to F (a candidate for `eval_engine --rules`) and never
    touches the rule file it started from.  The train calls are replaced by a scorer that
    prefers one threshold (what is under test is where the result goes, not the search)."""
    from callcoach.coaching.rules import DEFAULT_RULES
    from scripts import tune_rules

    text = DEFAULT_RULES.read_text()
    first_act, first_min = tune_rules.LEAF_RE.findall(text)[0]
    target = next(v for v in tune_rules.GRID if f"{v:g}" != first_min)

    class _Scorer:
        def __init__(self, _text):
            pass

        def evaluate(self, t):
            # +1 when the first leaf holds the target value, on every resample alike
            hit = float(tune_rules.LEAF_RE.findall(t)[0][1] == f"{target:g}")
            return hit, np.full(10, hit), np.full(3, hit)

    monkeypatch.setattr(tune_rules, "Tuner", _Scorer)
    src = tmp_path / "rules.yaml"
    src.write_text(text)
    out = tmp_path / "cand.yaml"
    assert tune_rules.main(["--rules", str(src), "--out", str(out), "--passes", "1", "--no-gate"]) in (0, None)
    assert src.read_text() == text
    tuned = out.read_text()
    assert tune_rules.LEAF_RE.findall(tuned)[0] == (first_act, f"{target:g}")
    changed = [(a, b) for a, b in zip(text.splitlines(), tuned.splitlines()) if a != b]
    assert len(tuned.splitlines()) == len(text.splitlines()) and len(changed) == 1   # in place


def test_only_moves_the_named_thresholds_and_holds_every_other(tmp_path, monkeypatch):
    """`--only ACT` lets the tuner move the thresholds of that act alone: a scorer that
    rewards moving every leaf and both call-type confidences gets exactly the named act's
    leaves moved, and with "classify" named, the confidences too."""
    from callcoach.coaching.rules import DEFAULT_RULES
    from scripts import tune_rules

    text = DEFAULT_RULES.read_text()
    leaves = tune_rules.LEAF_RE.findall(text)
    conf0 = tune_rules.CONF_RE.search(text).groups()

    class _Scorer:
        def __init__(self, _text):
            pass

        def evaluate(self, t):
            # one point per leaf and per confidence that differs from the start
            now = tune_rules.LEAF_RE.findall(t)
            moved = sum(a != b for a, b in zip(now, leaves))
            moved += sum(a != b for a, b in zip(tune_rules.CONF_RE.search(t).groups(), conf0))
            return float(moved), np.full(10, float(moved)), np.full(3, float(moved))

    monkeypatch.setattr(tune_rules, "Tuner", _Scorer)
    src = tmp_path / "rules.yaml"
    src.write_text(text)
    named = "answered"
    assert named in {a for a, _ in leaves}
    for only, conf_moves in ((named, False), (f"{named},classify", True)):
        out = tmp_path / "cand.yaml"
        assert tune_rules.main(["--rules", str(src), "--out", str(out), "--passes", "1",
                                "--only", only, "--no-gate"]) in (0, None)
        tuned = out.read_text()
        now = tune_rules.LEAF_RE.findall(tuned)
        moved = {a for a, b in zip(now, leaves) if a != b}
        assert {a for a, _ in moved} == {named}
        assert (tune_rules.CONF_RE.search(tuned).groups() != conf0) is conf_moves


def test_write_refuses_a_tuned_file_that_fails_the_behaviour_tests(tmp_path, monkeypatch, capsys):
    """`--write` never overwrites the rule file with tuned thresholds that fail the gate; with
    `--out` the candidate is written and the exit status says it failed.  (The gate's verdict
    is the injected fault here; tests/test_gate.py runs the real one.)"""
    from callcoach.coaching.rules import DEFAULT_RULES
    from scripts import gate as gate_mod
    from scripts import tune_rules

    text = DEFAULT_RULES.read_text()

    class _Scorer:
        def __init__(self, _text):
            pass

        def evaluate(self, t):
            moved = float(t != text)
            return moved, np.full(10, moved), np.full(3, moved)

    seen = []

    def _failing_gate(rules=None, model=None, tests=gate_mod.BATTERY):
        seen.append(rules.read_text())
        return gate_mod.GateResult(False, "1 failed, 120 passed", ("tests/test_x.py::test_y",))

    monkeypatch.setattr(tune_rules, "Tuner", _Scorer)
    monkeypatch.setattr(gate_mod, "gate", _failing_gate)
    src = tmp_path / "rules.yaml"
    src.write_text(text)
    assert tune_rules.main(["--rules", str(src), "--write", "--passes", "1"]) == 1
    assert src.read_text() == text and seen and seen[-1] != text     # the tuned text was gated
    assert "not written" in capsys.readouterr().out
    out = tmp_path / "cand.yaml"
    assert tune_rules.main(["--rules", str(src), "--out", str(out), "--passes", "1"]) == 1
    assert out.read_text() == seen[-1]


def test_an_author_filter_keeps_only_that_authors_calls():
    from scripts import coaching_data as data
    train = data.splits()["train"]
    one = train[0]
    every, truth_all = eval_engine.transcripts("train", "truth")
    trs, truth = eval_engine.transcripts("train", "truth", {one})
    assert trs and len(trs) < len(every)
    assert {v["author"] for v in truth.values()} == {one}
    assert {t.call_id for t in trs} == {c for c, v in truth_all.items() if v["author"] == one}
    with pytest.raises(SystemExit):
        eval_engine.main(["--split", "train", "--authors", "author-nobody"])
