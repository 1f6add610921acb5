"""Per-call insights: categories and triggers on the calibration list (written for these
tests, not taken from samples/insights), evidence, tickets, commitments, determinism."""

from __future__ import annotations

import dataclasses
import json

import pytest

from callcoach.coaching.rules import default_ruleset
from callcoach.coaching.score import score_batch, score_call
from callcoach.insights.categories import default_categories
from callcoach.insights.detect import call_insights, insights_batch
from test_insights_helpers import featured, scripted_call

START = "2025-03-04T09:30:00+00:00"      # a Tuesday

# -- calibration list: one customer opening per line, the category it states ---------------
CALIBRATION_CATEGORIES = {
    "outage": ["Our internet's been down since this morning.",
               "There's no power in the whole building.",
               "The website has been offline for an hour and customers can't order.",
               "I've had no signal on my phone for two days."],
    "billing": ["I've been overcharged on my last bill.",
                "Why is my direct debit higher this month?",
                "You billed me twice for the same order.",
                "There's a late payment fee on my statement I don't understand."],
    "delivery": ["My parcel hasn't arrived yet.",
                 "The courier says it was delivered but I've got nothing.",
                 "Where is my order? The tracking hasn't updated in a week.",
                 "The package was left outside in the rain."],
    "account_access": ["I can't log in to my account.",
                       "I'm locked out after too many password attempts.",
                       "The verification code never comes through.",
                       "My online banking has been blocked."],
    "fraud": ["There's a payment on my card I don't recognise.",
              "I think I've been scammed.",
              "Someone has used my card details online."],
    "product_defect": ["The fridge stopped cooling after a week.",
                       "My new phone won't turn on.",
                       "The kettle is leaking from the base.",
                       "The screen on my laptop is cracked and flickers."],
    "cancellation": ["I'd like to cancel my subscription.",
                     "I want to close my account please.",
                     "I'm calling to end my contract."],
    "appointment": ["The engineer didn't turn up yesterday.",
                    "I waited in all day and nobody came.",
                    "I need to reschedule my installation visit."],
    "other": ["I'd like to update my address.",
              "What are your opening hours?"],
}
UPSET = [("c", "This is the fourth time I've phoned about this and it's a joke."),
         ("c", "I'm completely fed up with your company.")]
# -- calibration list: what the agent (or customer) says, the trigger it shows -------------
CALIBRATION_TRIGGERS = {
    "lack_of_authority": [
        [("a", "I'm not authorised to issue a refund that large, so I'll need my supervisor to approve it.")],
        [("a", "That's above my limit, only a team leader can sign it off.")],
        [("a", "I can't waive the fee myself, it needs manager approval.")]],
    "specialised_help": [
        [("a", "I'm transferring you to our technical support team, they have the tools to fix this.")],
        [("a", "Our claims department handle this, so I'm passing it to them.")],
        [("a", "This needs a specialist, I'm referring it to our engineers.")]],
    "complexity": [
        [("a", "This is a complicated one with several issues at once, it needs a deeper investigation.")],
        [("a", "I've never seen this before, so I'm raising it for further investigation.")],
        [("a", "There are multiple faults here and it isn't straightforward.")]],
    "emotional_state": [
        [("c", "I want to speak to your manager right now."),
         ("a", "Of course, since you've asked for a manager I'll put you through.")],
        [("c", "Get me a supervisor."), ("a", "Okay, one moment.")],
        [("a", "I'm sorry, let me see what I can do.")]],
}


@pytest.fixture(scope="module")
def rs():
    return default_ruleset()


@pytest.fixture(scope="module")
def cats():
    return default_categories()


def _run(calls, rs, cats):
    calls = featured(calls)
    reports = score_batch([(c, None) for c in calls], rs)
    return reports, insights_batch(list(zip(calls, reports)), cats, rs)


def test_calibration_categories(rs, cats):
    calls, want = [], []
    for cat, lines in CALIBRATION_CATEGORIES.items():
        for i, text in enumerate(lines):
            calls.append(scripted_call(f"{cat}-{i}", [("a", "Hello, how can I help?"), ("c", text),
                                                      ("a", "Okay, let me look into that for you.")], START))
            want.append(cat)
    _, got = _run(calls, rs, cats)
    wrong = [(c.call_id, g["category"]) for c, g, w in zip(calls, got, want) if g["category"] != w]
    assert wrong == []
    for g, w in zip(got, want):
        if w == "other":
            assert g["category_evidence"] is None and g["category_label"] == "Other"
        else:
            assert g["category_evidence"]["speaker"] == "customer"
            assert 0 < g["category_confidence"] <= 1


def test_calibration_triggers(rs, cats):
    calls, want = [], []
    for trig, variants in CALIBRATION_TRIGGERS.items():
        for i, lines in enumerate(variants):
            calls.append(scripted_call(f"{trig}-{i}", UPSET + lines, START))
            want.append(trig)
    reports, got = _run(calls, rs, cats)
    assert {r["call_type"] for r in reports} <= {"escalation", "handoff"}
    assert [(c.call_id, g["trigger"]) for c, g in zip(calls, got)] == [(c.call_id, w) for c, w in zip(calls, want)]
    # the agent stating the reason is "stated"; the customer's upset or demand is "inferred"
    bases = {c.call_id: g["trigger_basis"] for c, g in zip(calls, got)}
    assert bases["lack_of_authority-0"] == "stated" and bases["emotional_state-0"] == "stated"
    assert bases["emotional_state-1"] == "inferred" and bases["emotional_state-2"] == "inferred"


def _t(tr, turn: int, sentence: str) -> float:
    """Time of a sentence as the features compute it for turns without words: the turn's
    start plus its duration times the sentence's character offset over the turn's length."""
    tt = tr.turns[turn]
    return round(tt.start + (tt.end - tt.start) * tt.text.index(sentence) / len(tt.text), 2)


def test_call_insights_exact(rs, cats):
    tr = scripted_call("x1", [
        ("a", "Thanks for calling Fibrelink, you're through to Sam."),
        ("c", "Hi. My broadband has been down since Sunday and I work from home."),
        ("c", "This is the third time this month. It's a joke, I'm really fed up with it."),
        ("a", "I'm really sorry. I can't authorise compensation above twenty pounds myself, only my team leader can sign that off."),
        ("a", "Your case number is F L six two eight three. I'll call you by four tomorrow, and you'll have an update from the network team before Friday."),
    ], "2025-03-04T09:12:30+00:00", customer_id="cust-9", agent_id="agt-7", team="blue")
    (tr,) = featured([tr])
    rep = score_call(tr, rs)
    assert rep["call_type"] == "escalation"
    got = call_insights(tr, rep, cats, ruleset=rs)
    assert got == {
        "schema": "callcoach.insights", "schema_version": "1", "call_id": "x1",
        "categories_version": cats.version, "ruleset_version": rs.version, "call_type": "escalation",
        "agent_id": "agt-7", "team": "blue", "customer_id": "cust-9",
        "started_at": "2025-03-04T09:12:30+00:00",
        "category": "outage", "category_label": "Outage / service down",
        "category_confidence": got["category_confidence"],
        "category_evidence": {"t": _t(tr, 1, "My broadband"), "speaker": "customer",
                              "quote": "My broadband has been down since Sunday and I work from home."},
        "category_scores": got["category_scores"],
        "trigger": "lack_of_authority", "trigger_basis": "stated", "trigger_confidence": 1.0,
        "trigger_evidence": {"t": _t(tr, 3, "I can't"), "speaker": "agent", "quote": "I can't authorise compensation above "
                             "twenty pounds myself, only my team leader can sign that off."},
        "ticket_refs": ["FL6283"],
        "commitments": [
            {"t": _t(tr, 4, "I'll call"), "quote": "I'll call you by four tomorrow, and you'll have an update from the network team before Friday.",
             "due": "2025-03-05T16:00:00+00:00", "due_kind": "time", "who": "agent"},
            {"t": _t(tr, 4, "I'll call"), "quote": "I'll call you by four tomorrow, and you'll have an update from the network team before Friday.",
             "due": "2025-03-07T00:00:00+00:00", "due_kind": "date", "who": "team"}],
        "commitments_unresolved": 0,
    }
    # outage: 2 (down) x 1.5 (opening); billing: "pounds" 0.5 x 0.5 (agent)
    assert got["category_scores"] == {"outage": 3.0, "billing": 0.25}
    assert got["category_confidence"] == round(3.0 / 3.25 * 3.0 / (3.0 + 2.0), 3)
    json.dumps(got)


def test_deterministic_batch_equals_single_and_dict_input(rs, cats):
    calls = featured(scripted_call(f"d{i}", UPSET + [("a", f"I'll call you back by {i + 2} pm today.")], START,
                                   customer_id=f"c{i}") for i in range(3))
    reports, batch = _run(calls, rs, cats)
    singles = [call_insights(c, r, cats, ruleset=rs) for c, r in zip(calls, reports)]
    assert json.dumps(batch, sort_keys=True) == json.dumps(singles, sort_keys=True)
    again = call_insights(calls[1].to_dict(), reports[1], cats, ruleset=rs)
    assert again == batch[1]
    bare = dataclasses.replace(calls[2], features=None)     # features recomputed when absent
    assert call_insights(bare, reports[2], cats, ruleset=rs) == batch[2]
    assert [c["due"] for b in batch for c in b["commitments"]] == [
        "2025-03-04T14:00:00+00:00", "2025-03-04T15:00:00+00:00", "2025-03-04T16:00:00+00:00"]


def test_standard_call_has_no_trigger_and_fallback_for_bare_handoff(rs, cats):
    std = scripted_call("s", [("c", "Can I change my delivery day?"), ("a", "Yes, done.")], START)
    bare = scripted_call("h", [("c", "Hello, the invoices in our portal won't download."),
                               ("a", "Right, this needs to go to our second line support team.")], START)
    reports, (a, b) = _run([std, bare], rs, cats)
    assert [r["call_type"] for r in reports] == ["standard", "handoff"]
    assert (a["trigger"], a["trigger_basis"], a["trigger_confidence"], a["trigger_evidence"]) == (None, None, None, None)
    # "second line support team" + "go to": a specialist team named with a hand-over verb
    assert (b["trigger"], b["trigger_basis"]) == ("specialised_help", "stated")
    (quiet,) = featured([scripted_call("q", [("c", "Hello."), ("a", "I'll transfer you to a colleague.")], START)])
    rep = score_call(quiet, rs)
    assert rep["call_type"] == "handoff"
    q = call_insights(quiet, rep, cats, ruleset=rs)
    # only the scorer's transfer act: an inferred cue of specialised help
    assert (q["trigger"], q["trigger_basis"], q["trigger_confidence"]) == ("specialised_help", "inferred", 0.75)
    no_cue = call_insights(quiet, dict(rep, call_type="handoff"), dataclasses.replace(
        cats, triggers={n: dataclasses.replace(t, cues=t.cues[:1]) for n, t in cats.triggers.items()}),
        ruleset=rs)
    assert (no_cue["trigger"], no_cue["trigger_basis"], no_cue["trigger_confidence"],
            no_cue["trigger_evidence"]) == ("specialised_help", "fallback", 0.4, None)


def test_tickets_from_either_speaker_and_not_amounts(rs, cats):
    tr = scripted_call("t", [
        ("c", "My reference is C X two oh nine three one, from last week."),
        ("c", "And my claim for 250 pounds was ignored."),
        ("a", "Thanks. Your new case number is K R two nine zero six, and the incident number is 8 8 1 2 0."),
        ("a", "The job number is J B 40419."),
    ], START)
    (tr,) = featured([tr])
    got = call_insights(tr, score_call(tr, rs), cats, ruleset=rs)
    assert got["ticket_refs"] == ["CX20931", "KR2906", "88120", "JB40419"]


def test_a_misheard_linking_word_before_a_code_still_gives_the_ticket(rs, cats):
    """ASR hears "case number is" as "case number in": a code of letters and digits (or
    4+ digits) after it is still the reference, as the ticket_reference check sees it;
    a short number or a plain word after a link is not."""
    tr = scripted_call("t", [
        ("a", "Thanks. Your case number in S V seven seven oh three, and I've added it all."),
        ("a", "The reference number of 12 pounds is on the letter."),
        ("a", "The ticket number in our system is fine."),
        ("a", "Your job number at 88120 is booked."),
    ], START)
    (tr,) = featured([tr])
    got = call_insights(tr, score_call(tr, rs), cats, ruleset=rs)
    assert got["ticket_refs"] == ["SV7703", "88120"]


def test_commitment_forms_and_exclusions(rs, cats):
    tr = scripted_call("c", [
        ("c", "My parcel never came."),
        ("a", "You'll need to upload the receipt by Friday."),          # the customer's task
        ("a", "Shall I call you tomorrow at 3 pm?"),                     # a question
        ("a", "Check the tracking online by tonight."),                  # self-service
        ("a", "The courier will redeliver it on Thursday."),              # team, bare day
        ("a", "I'm sending you a refund confirmation within the hour."),  # agent, relative
        ("a", "We'll ring you on the 14th of March at half past ten."),    # team, date + time
    ], START, timezone="Europe/London")
    (tr,) = featured([tr])
    got = call_insights(tr, score_call(tr, rs), cats, ruleset=rs)
    assert [(c["due"], c["due_kind"], c["who"]) for c in got["commitments"]] == [
        ("2025-03-06T23:59:59+00:00", "date", "team"),
        (got["commitments"][1]["due"], "relative", "agent"),
        ("2025-03-14T10:30:00+00:00", "time", "team")]
    t = got["commitments"][1]["t"]
    assert got["commitments"][1]["due"] == f"2025-03-04T10:30:{int(t):02d}+00:00"
    assert got["commitments_unresolved"] == 0


def test_no_start_time_leaves_commitments_unresolved(rs, cats):
    (tr,) = featured([scripted_call("n", UPSET + [("a", "I'll call you by 4 pm tomorrow.")], None)])
    got = call_insights(tr, score_call(tr, rs), cats, ruleset=rs)
    assert got["commitments"] == [] and got["commitments_unresolved"] == 1
    assert got["started_at"] is None


def test_team_restricted_category(rs, tmp_path):
    from callcoach.insights.categories import DEFAULT_CATEGORIES, load_categories
    text = DEFAULT_CATEGORIES.read_text().replace(
        "categories:\n  outage:",
        "categories:\n  roaming:\n    label: Roaming charges abroad\n    teams: [travel]\n    cues:\n"
        "      - re: '\\broaming\\b'\n        weight: 3\n  outage:", 1)
    p = tmp_path / "team-categories.yaml"
    p.write_text(text)
    mine = load_categories(p)
    assert mine.version != default_categories().version and list(mine.categories)[0] == "roaming"
    lines = [("c", "I was charged roaming on my bill in France.")]
    travel, other = featured([scripted_call("r1", lines, START, team="travel"),
                              scripted_call("r2", lines, START, team="north")])
    reports = score_batch([(travel, None), (other, None)], rs)
    a, b = insights_batch(list(zip([travel, other], reports)), mine, rs)
    assert (a["category"], b["category"]) == ("roaming", "billing")
    assert a["categories_version"] == mine.version
