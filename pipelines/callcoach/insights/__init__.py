"""Escalation insights across calls (docs/insights.md).

    categories.py  the categories file (pipelines/callcoach/rules/categories.yaml): issue categories,
                   escalation triggers, ticket and commitment patterns; versioned
                   "<version>-<sha8>", validated fail-fast
    due.py         due datetimes of a commitment sentence ("by four tomorrow" -> ISO-8601)
    detect.py      call_insights / insights_batch: per call category, trigger, ticket
                   references and commitments, with evidence
    tables.py      insight_row and the BI tables: insights, recurring_issues, commitments,
                   commitments_by_agent, recognition (pure polars, fixed schemas)

Public API:
    from callcoach.insights.categories import load_categories, default_categories
    from callcoach.insights.detect import call_insights, insights_batch
    from callcoach.insights.tables import insight_row, insights_frame, build_tables
"""
