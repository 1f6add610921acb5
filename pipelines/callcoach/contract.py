"""The fixed vocabulary of ../shared/coaching-contract.md: the one place that names call
types, checks, risks, areas, levels and steps for every report, rule set, table, dashboard
and evaluation.  Renaming any of these is a breaking change of the report schema."""

CALL_TYPES = ("escalation", "handoff", "standard")

ESCALATION_CHECKS = (
    "issue_acknowledged", "acknowledged_before_solving", "root_cause_explained",
    "action_plan_created", "timeline_committed", "follow_up_scheduled",
    "satisfaction_confirmed", "executive_escalation_offered",
)
HANDOFF_CHECKS = (
    "issue_recap_given", "impact_assessed", "ownership_stated", "specific_timeframe_given",
    "ticket_reference_provided", "issue_documented", "warm_handoff", "expectations_set",
)
CHECKS = ESCALATION_CHECKS + HANDOFF_CHECKS
CHECKS_BY_CALL_TYPE = {"escalation": ESCALATION_CHECKS, "handoff": HANDOFF_CHECKS, "standard": ()}

RISKS = (
    "resolution_timeline_vague", "no_follow_up_scheduled", "executive_escalation_not_offered",
    "concern_not_addressed", "no_escalation_timeframe", "customer_must_reexplain",
    "no_proactive_update_commitment", "ownership_unclear_after_handoff",
)

AREAS = ("control", "ownership", "empathy", "commitment", "listening", "clarity", "confidence")
LEVELS = ("low", "medium", "high")
EMPATHY_LEVELS = LEVELS
CONFIDENCE_LEVELS = LEVELS
JARGON_LEVELS = ("none", "some", "heavy")
SEQUENCE_STEPS = ("acknowledge", "understand", "own", "act", "follow_up")
MOMENT_KINDS = ("improvement", "strength")
SPEAKERS = ("agent", "customer")
