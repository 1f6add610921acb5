"""Coaching engine: transcript (+ stored features) in, per-call report out.

    features.py   rule-independent, computed once per transcript: sentences, normalised
                  text, similarity of each sentence to a fixed, versioned bank of act
                  prototypes (all-MiniLM-L6-v2, run in numpy), echo of the customer
    rules.py      versioned rule sets (YAML under pipelines/callcoach/rules/), validated fail-fast
    detectors.py  act detection over a batch of sentences (polars) and condition logic
    score.py      score_call / score_batch: the contract's per-call report

Public API:
    from callcoach.coaching.rules import load_ruleset, default_ruleset
    from callcoach.coaching.features import turn_features, FEATURES_VERSION
    from callcoach.coaching.score import score_call, score_batch
"""
