"""Shared helpers for the insights tests: scripted calls with sidecar metadata, and the
scripted call series of a contact centre's two weeks used by the table tests."""

from __future__ import annotations

import dataclasses

from callcoach.coaching.features import features_batch
from callcoach.transcript import Transcript, Turn


def scripted_call(call_id: str, lines, started_at: str | None, customer_id: str | None = None,
                  agent_id: str = "agt-1", team: str = "north", timezone: str | None = None,
                  gap: float = 0.6) -> Transcript:
    """lines: [("a"|"c", text)]; each turn lasts 0.06 s per character, ``gap`` s apart.
    The metadata is what the call's sidecar would carry."""
    turns = []
    t = 0.5
    for who, text in lines:
        dur = max(0.8, 0.06 * len(text))
        turns.append(Turn("agent" if who == "a" else "customer", round(t, 3), round(t + dur, 3), text))
        t += dur + gap
    md = {"agent_id": agent_id, "team": team}
    if started_at is not None:
        md["started_at"] = started_at
    if customer_id is not None:
        md["customer_id"] = customer_id
    if timezone is not None:
        md["timezone"] = timezone
    tr = Transcript(call_id=call_id, duration_s=round(t + 0.8, 3), turns=tuple(turns),
                    models={"asr": "test-asr@1", "diarization": "test-diar@1"}, metadata=md)
    return tr


def featured(calls):
    """The calls with their real coaching features stored on them (one batched model pass),
    as the speech stage stores them, so the scorer and the insights share them."""
    calls = list(calls)
    return [dataclasses.replace(c, features=f) for c, f in zip(calls, features_batch(calls))]


# -- the series: two ISO weeks (2025-W10, 2025-W11), three agents, two teams -----------------
#
# customer cust-A  A1 (Mon W10, outage, well-handled escalation, ticket FL2034, "I'll call you
#                  by four tomorrow") is followed by A2 next day at 15:30, before the 16:00 due:
#                  KEPT.  A3 (Mon W11, outage, poorly handled escalation, "by 5 pm today") is
#                  followed by A4 the next morning, after the due: BROKEN.
# customer cust-B  B1 (Mon W10, billing, "email you the corrected statement by Friday"): no
#                  later call, due long past: BROKEN.
# no customer id   C1 (Wed W10, delivery, clean handoff, ticket TR5022, "Sam will call you by
#                  midday on Thursday", team) and C2 (Thu W10 11:30 +01:00) where the caller quotes
#                  the reference T R five zero two two: KEPT through the ticket.
# customer cust-D  D1 (Tue W11, billing, "I'll ring you back before Friday" = Fri 00:00): no later
#                  call, the data ends on Wed: OPEN.
# customer cust-E  E1 (Wed W11, billing, standard, no promise): the latest call (as of).
SERIES = [
    ("A1", "2025-03-03T09:00:00+00:00", "cust-A", "agt-1", "north", [
        ("a", "Thanks for calling Fibrelink, this is Priya, how can I help?"),
        ("c", "My broadband has been down since Saturday. I run my business from the house, and it has dropped three times this month. I'm ready to switch provider."),
        ("a", "That must be maddening, I'm sorry. What's your account number?"),
        ("c", "It's four four one nine."),
        ("a", "A faulty card at your local exchange caused the drop. I'm resetting your line at the exchange right now. Your fault reference is F L two zero three four."),
        ("c", "Okay. I've been with you for years, you know."),
        ("a", "We'd really like to keep you as a customer. I'll call you by four tomorrow to confirm. I can also bring in my manager if you'd like. Have I put everything right for you today?"),
        ("c", "No, that's fine if it's really fixed. Thank you."),
    ]),
    ("B1", "2025-03-03T11:00:00+00:00", "cust-B", "agt-1", "north", [
        ("a", "Hello, Fibrelink billing, Tom speaking."),
        ("c", "Hi, my bill this month is wrong, you've charged me twice for the router."),
        ("a", "Let me look. Yes, the router charge appears twice. I've removed the duplicate."),
        ("a", "I'll email you the corrected statement by Friday."),
        ("c", "Great, thanks."),
    ]),
    ("A2", "2025-03-04T15:30:00+00:00", "cust-A", "agt-1", "north", [
        ("a", "Fibrelink, Priya speaking."),
        ("c", "Hi Priya, just letting you know the broadband has been working since yesterday afternoon."),
        ("a", "That's good to hear, thanks for letting me know."),
    ]),
    ("C1", "2025-03-05T10:00:00+01:00", None, "agt-2", "south", [
        ("a", "Thank you for calling Oakhaus deliveries, this is Leo, how can I help?"),
        ("c", "Hi Leo. My sofa delivery never arrived yesterday and the tracking hasn't moved. I had taken the day off."),
        ("a", "How much is this affecting you, is anyone without somewhere to sit?"),
        ("c", "We've got nothing in the living room, so it's urgent for us."),
        ("a", "That's high priority, so I'm escalating it to our tracing team. Your ticket is T R five zero two two, and I've noted everything you told me."),
        ("c", "So I just wait?"),
        ("a", "I'm bringing Sam from tracing onto the call. Sam, the customer's sofa delivery never arrived yesterday and the tracking is stuck at the depot."),
        ("c", "Thank you, that helps."),
        ("a", "Sam will call you by midday on Thursday with a new date. I'll stay on your case until it's delivered."),
        ("c", "Perfect, thanks Leo."),
    ]),
    ("C2", "2025-03-06T11:30:00+01:00", None, "agt-2", "south", [
        ("a", "Oakhaus deliveries, Mia speaking."),
        ("c", "Hi, my reference is T R five zero two two, Sam from your tracing team rang me and I just wanted to confirm the new delivery date."),
        ("a", "Yes, it's booked for Saturday morning."),
        ("c", "Lovely, thanks."),
    ]),
    ("A3", "2025-03-10T10:00:00+00:00", "cust-A", "agt-3", "north", [
        ("a", "Fibrelink, Josh speaking."),
        ("c", "My internet is down again. This is ridiculous. I'm fed up with your useless service."),
        ("a", "Have you tried restarting the router?"),
        ("c", "Of course I have."),
        ("a", "I'll call you by 5 pm today with an update."),
    ]),
    ("D1", "2025-03-11T09:00:00+00:00", "cust-D", "agt-3", "north", [
        ("a", "Fibrelink billing, Josh speaking."),
        ("c", "Hello, there's a charge on my bill for a movie I never rented."),
        ("a", "I can see it. I'll ring you back before Friday once it's reversed."),
        ("c", "Okay, thank you."),
    ]),
    ("A4", "2025-03-11T08:00:00+00:00", "cust-A", "agt-3", "north", [
        ("a", "Fibrelink, Josh speaking."),
        ("c", "Nobody called me back yesterday and my broadband is still down."),
        ("a", "I'm sorry, let me check the fault."),
    ]),
    ("E1", "2025-03-12T14:00:00+00:00", "cust-E", "agt-2", "south", [
        ("a", "Hello, Fibrelink billing, Mia speaking."),
        ("c", "Hi, can you tell me when my next bill is due?"),
        ("a", "It's due on the twentieth."),
        ("c", "Thanks."),
    ]),
]


def series_calls():
    return featured(scripted_call(cid, lines, started, cust, agent, team)
                    for cid, started, cust, agent, team, lines in SERIES)
