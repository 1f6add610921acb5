"""Check a file of concern episodes (samples/corpus/episodes/*.jsonl) before it is used.

An episode is a stretch of a call around one customer concern: a few turns before it, the
customer turn that raises it, and at least ``ANSWER_WINDOW`` agent turns after it, labelled
with the sentence that raises the concern and the agent sentence that answers it (or none:
the concern is left unanswered).  See samples/corpus/README.md.

    python scripts/check_episodes.py samples/corpus/episodes/episodes-j.jsonl [...]

Prints one line per problem and exits 1 when there is any.
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, os.path.join(str(Path(__file__).resolve().parents[1]), "pipelines"))   # the callcoach package of this tree

from callcoach.coaching.features import normalise  # noqa: E402

ANSWER_WINDOW = 3          # agent turns after the concern that an answer may come in
KINDS_ANSWERED = {"direct", "implicit", "after_check", "terse"}
KINDS_UNANSWERED = {"deflect", "vague", "off_topic", "moved_on", "acknowledge_only",
                    "wrong_topic_answer", "question_back"}
REGISTERS = {"formal", "casual", "terse", "rambling", "asr"}
FIELDS = {"id", "industry", "variety", "register", "turns", "concern_turn", "concern",
          "answer_turn", "answer", "kind", "author", "note"}


def locate(episode: dict) -> tuple[int, int | None]:
    """(concern turn, answer turn or None), checked: the concern text is in a customer turn,
    the answer text in one of the next ANSWER_WINDOW agent turns after it."""
    turns = episode["turns"]
    c = episode["concern_turn"]
    if not (0 <= c < len(turns)) or turns[c]["speaker"] != "customer":
        raise ValueError("concern_turn is not a customer turn")
    if normalise(episode["concern"]) not in normalise(turns[c]["text"]):
        raise ValueError("concern text is not in the concern turn")
    agent_after = [i for i in range(c + 1, len(turns)) if turns[i]["speaker"] == "agent"]
    if len(agent_after) < ANSWER_WINDOW:
        raise ValueError(f"only {len(agent_after)} agent turns after the concern (need {ANSWER_WINDOW})")
    a = episode.get("answer_turn")
    if a is None:
        if episode.get("answer"):
            raise ValueError("answer text without answer_turn")
        return c, None
    if a not in agent_after[:ANSWER_WINDOW]:
        raise ValueError(f"answer_turn {a} is not one of the {ANSWER_WINDOW} agent turns after the concern")
    if not episode.get("answer") or normalise(episode["answer"]) not in normalise(turns[a]["text"]):
        raise ValueError("answer text is not in the answer turn")
    return c, a


def check(path: Path) -> list[str]:
    problems = []
    seen = set()
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            e = json.loads(line)
        except json.JSONDecodeError as exc:
            problems.append(f"{path}:{n}: not JSON: {exc}")
            continue
        where = f"{path}:{n} ({e.get('id', '?')})"
        extra = set(e) - FIELDS
        if extra:
            problems.append(f"{where}: unknown fields {sorted(extra)}")
        missing = {"id", "industry", "variety", "register", "turns", "concern_turn", "concern",
                   "answer_turn", "kind"} - set(e)
        if missing:
            problems.append(f"{where}: missing fields {sorted(missing)}")
            continue
        if e["id"] in seen:
            problems.append(f"{where}: duplicate id")
        seen.add(e["id"])
        if e["register"] not in REGISTERS:
            problems.append(f"{where}: register must be one of {sorted(REGISTERS)}")
        if any(set(t) - {"speaker", "text"} or t.get("speaker") not in ("agent", "customer")
               or not str(t.get("text", "")).strip() for t in e["turns"]):
            problems.append(f"{where}: each turn is {{speaker: agent|customer, text}}")
            continue
        try:
            _c, a = locate(e)
        except (ValueError, TypeError, KeyError) as exc:
            problems.append(f"{where}: {exc}")
            continue
        kinds = KINDS_UNANSWERED if a is None else KINDS_ANSWERED
        if e["kind"] not in kinds:
            problems.append(f"{where}: kind {e['kind']!r} must be one of {sorted(kinds)} "
                            f"for an {'un' if a is None else ''}answered concern")
    return problems


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__)
        return 2
    problems = [p for f in argv for p in check(Path(f))]
    for p in problems:
        print(p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
