"""Which speaker is the agent and which the customer.

Evidence, strongest first:
  1. sidecar metadata: ``agent_channel`` on stereo recordings (call-centre recorders know
     which leg is the agent), or ``agent_speaker`` naming a diarization label;
  2. content: the agent greets with the company ("thank you for calling", "X speaking,
     how can I help"), asks for identifying details (account number, postcode), speaks for
     the company ("our system", "let me check"); the customer talks about "my bill",
     "your company", wants, needs and threats to cancel;
  3. talk pattern: on a recorded inbound call the agent speaks first.
Every assignment carries a method and a confidence in 0..1.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Mapping, Sequence

from ..transcript import Turn

_AGENT_CUES = [
    (r"\bthank(s| you) for (calling|contacting|holding|your patience)\b", 3.0),
    (r"\b(how|what) (can|may) i (help|assist)\b", 3.0),
    (r"\b(you're|you are) (speaking|through) (with|to)\b", 3.0),
    (r"^\W*[\w' -]{2,40}(,| -) [a-z]+ speaking\b", 3.0),
    (r"\b(my name is|this is) [a-z]+\b.*\b(help|calling)\b", 1.5),
    (r"\bcan i (have|take|get|confirm|grab) (your|the)\b", 2.0),
    (r"\b(could|can) you (confirm|give me|tell me) your\b", 2.0),
    (r"\b(account|policy|order|reference|case|ticket|membership) number\b", 0.5),
    (r"\b(date of birth|postcode|post code|zip code|security question)\b", 1.0),
    (r"\b(let me|i'll just|bear with me|one moment)\b", 1.0),
    (r"\b(i can see|i've (checked|pulled up)|on (my|our) (end|system|screen))\b", 1.5),
    (r"\bour (system|team|records|policy|engineers?|technicians?)\b", 1.0),
    (r"\b(is there anything else|anything else i can)\b", 2.0),
    (r"\b(i'm so sorry|i apologi[sz]e|i completely understand|i understand (why|how))\b", 1.0),
]
_CUSTOMER_CUES = [
    (r"\bmy (bill|account|internet|order|phone|card|policy|parcel|package|flight|bag|payment)\b", 1.5),
    (r"\byour (company|service|website|app|engineers?|people)\b", 1.5),
    (r"\b(i want|i need|i'd like) (to|a|my|you)\b", 1.0),
    (r"\b(cancel|switch provider|leave you|complain|complaint|manager|supervisor)\b", 1.0),
    (r"\b(i've been charged|i was charged|charged me|i've been waiting|third time i've called)\b", 2.0),
    (r"\b(hi|hello),? [a-z]+\.", 0.5),
    (r"\bit's (oh|zero|[0-9])", 1.0),
]
_AGENT_RE = [(re.compile(p), w) for p, w in _AGENT_CUES]
_CUSTOMER_RE = [(re.compile(p), w) for p, w in _CUSTOMER_CUES]
FIRST_SPEAKER_BONUS = 1.5


@dataclass(frozen=True, slots=True)
class RoleAssignment:
    roles: Mapping[str, str]            # diarization label -> "agent" | "customer"
    confidence: float
    method: str                         # sidecar | content | first_speaker

    def describe(self) -> dict:
        by_role: dict = {}
        for label, role in sorted(self.roles.items()):
            by_role.setdefault(role, []).append(label)
        return {"labels": dict(self.roles), "by_role": by_role,
                "confidence": round(self.confidence, 3), "method": self.method}


def cue_scores(text: str) -> tuple[float, float]:
    t = " ".join(text.lower().split())
    agent = sum(w for rx, w in _AGENT_RE if rx.search(t))
    customer = sum(w for rx, w in _CUSTOMER_RE if rx.search(t))
    return agent, customer


def assign_roles(turns: Sequence[Turn], metadata: Mapping | None = None) -> RoleAssignment:
    """Map each diarization label of ``turns`` to agent or customer."""
    metadata = metadata or {}
    labels = sorted({t.speaker for t in turns})
    if not labels:
        return RoleAssignment({}, 0.0, "none")

    channel = metadata.get("agent_channel")
    if channel is not None and all(l.startswith("CH") for l in labels):
        agent_label = f"CH{int(channel)}"
        return RoleAssignment({l: "agent" if l == agent_label else "customer" for l in labels},
                              1.0, "sidecar")
    named = metadata.get("agent_speaker")
    if named in labels:
        return RoleAssignment({l: "agent" if l == named else "customer" for l in labels},
                              1.0, "sidecar")

    ordered = sorted(turns, key=lambda t: t.start)
    score = {l: 0.0 for l in labels}
    # The first turns carry the greeting; later ones carry most other cues.
    for i, turn in enumerate(ordered):
        a, c = cue_scores(turn.text)
        weight = 1.5 if i < 2 else 1.0
        score[turn.speaker] += weight * (a - c)
    cue_total = sum(abs(v) for v in score.values())
    score[ordered[0].speaker] += FIRST_SPEAKER_BONUS

    ranked = sorted(labels, key=lambda l: (-score[l], l))
    if len(labels) == 1:
        role = "agent" if score[ranked[0]] > 0 else "customer"
        return RoleAssignment({ranked[0]: role}, _sigmoid(abs(score[ranked[0]])), "content")
    roles = {ranked[0]: "agent", ranked[-1]: "customer"}
    for l in ranked[1:-1]:   # over-split speakers: side with the closer extreme
        roles[l] = "agent" if score[l] - score[ranked[-1]] > score[ranked[0]] - score[l] else "customer"
    margin = score[ranked[0]] - max(score[l] for l in labels if roles[l] == "customer")
    method = "content" if cue_total > 0 else "first_speaker"
    return RoleAssignment(roles, _sigmoid(margin), method)


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x / 2.0))
