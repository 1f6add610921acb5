"""The coaching engine, compiled once: rule set + issue categories + act model.

``Engine`` loads and cross-checks its three versioned inputs once (an act the categories read
must exist in the rule set; every act the rules read must exist in the act model), compiles
the rule set's checks and risks and the categories' cues, and then, for each batch of calls,
detects every act once and hands the same detections to the report and to the insights.

    engine = Engine.load(ruleset_path=None, categories_path=None)
    for report, insights in engine.score(items):   # items: (transcript, features | None)
        ...

``engine.versions`` names what made a result: rule set, categories, act model, features.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from .acts import ActModel, ActModelError, load_act_model
from .features import FEATURES_VERSION
from .rules import RuleSet, default_ruleset, load_ruleset
from . import score as _score


@dataclass(frozen=True)
class Engine:
    ruleset: RuleSet
    categories: Any                   # insights.categories.Categories
    act_model: ActModel

    @staticmethod
    def load(ruleset_path: str | None = None, categories_path: str | None = None,
             act_model_dir: str | None = None) -> "Engine":
        from ..insights.categories import default_categories, load_categories
        from ..insights.detect import _plan

        rs = load_ruleset(ruleset_path) if ruleset_path else default_ruleset()
        cats = load_categories(categories_path) if categories_path else default_categories()
        cats.check_acts(rs)
        model = load_act_model(act_model_dir)
        has = (set(model.labels) | ({"answered"} if model.ans_W is not None else set())
               | ({"unanswered"} if model.un_W is not None else set()))
        missing = sorted(set(rs.model_acts) - has)
        if missing:
            raise ActModelError(f"rule set {rs.version} reads acts {missing} that act model "
                                f"{model.version} does not have")
        _score._compiled(rs)          # checks and risks as closures, once
        _plan(cats, rs)               # the categories' cue columns, once
        return Engine(rs, cats, model)

    @property
    def versions(self) -> dict[str, str]:
        return {"ruleset": self.ruleset.version, "categories": self.categories.version,
                "acts": self.act_model.version, "features": FEATURES_VERSION}

    def detect(self, items: Iterable[tuple[Any, Mapping | None]]) -> "_score.Detected":
        return _score.detect(items, self.ruleset)

    def reports(self, items: Iterable[tuple[Any, Mapping | None]]) -> list[dict[str, Any]]:
        return _score.reports(self.detect(items), self.ruleset)

    def score(self, items: Iterable[tuple[Any, Mapping | None]]) -> list[tuple[dict, dict]]:
        """(report, insights) per call; acts are detected once for both."""
        from ..insights.detect import insights_batch

        d = self.detect(items)
        reps = _score.reports(d, self.ruleset)
        ins = insights_batch([(tr, r) for tr, r in zip(d.transcripts, reps)], self.categories,
                             self.ruleset, detected=d)
        return list(zip(reps, ins))
