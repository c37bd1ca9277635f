"""The shared vocabulary: typed records that cross stages, by concern.

Stages meet only through these frozen records and the store; none of them imports another stage
for a type. ``traffic``: the proxy's :class:`Exchange`, the writer's :class:`LoggedRequest`,
verdicts, feedback, model identity. ``alerts``: scopes, states, transitions, silences.
``quality``: sample reasons and score summaries. ``drift``: one feature's comparison.
``scopes``: which traffic a configured rule applies to. ``windows``: the :class:`TimeWindow`
every query reads.
"""

from sidecar.records.alerts import (
    AlertEvent,
    AlertState,
    Event,
    OutboxItem,
    Scope,
    Silence,
    Status,
    Transition,
    make_scope,
)
from sidecar.records.drift import (
    CheckedFeature,
    DriftCheck,
    FeatureDrift,
    Kind,
    ScopeCheck,
    Statistic,
    WindowVectors,
)
from sidecar.records.quality import (
    FAILED_VERDICTS,
    JUDGEABLE_PATHS,
    UNBIASED_REASONS,
    Baseline,
    ClaimedRequest,
    JudgementResult,
    SampleReason,
    ScoreSummary,
)
from sidecar.records.scopes import ScopeMatch
from sidecar.records.traffic import (
    ErrorKind,
    Exchange,
    Feedback,
    JsonValue,
    LoggedRequest,
    ModelIdentity,
    SchemaIssue,
    SchemaVerdict,
    Verdict,
)
from sidecar.records.windows import TimeWindow

__all__ = [
    "FAILED_VERDICTS",
    "JUDGEABLE_PATHS",
    "UNBIASED_REASONS",
    "AlertEvent",
    "AlertState",
    "Baseline",
    "CheckedFeature",
    "ClaimedRequest",
    "DriftCheck",
    "ErrorKind",
    "Event",
    "Exchange",
    "FeatureDrift",
    "Feedback",
    "JsonValue",
    "JudgementResult",
    "Kind",
    "LoggedRequest",
    "ModelIdentity",
    "OutboxItem",
    "SampleReason",
    "SchemaIssue",
    "SchemaVerdict",
    "Scope",
    "ScopeCheck",
    "ScopeMatch",
    "ScoreSummary",
    "Silence",
    "Statistic",
    "Status",
    "TimeWindow",
    "Transition",
    "Verdict",
    "WindowVectors",
    "make_scope",
]
