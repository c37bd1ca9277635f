"""The shared vocabulary: typed records that cross stages, by concern.

Stages meet only through these frozen records and the store; none of them imports another stage
for a type. ``traffic``: the proxy's :class:`Exchange`, the writer's :class:`LoggedRequest`,
verdicts, feedback, model identity. ``alerts``: scopes, states, transitions, silences.
``quality``: sample reasons and score summaries. ``drift``: one feature's comparison.
``scopes``: which traffic a configured rule applies to.
"""

from sidecar.records.alerts import (
    AlertState,
    Event,
    Scope,
    Silence,
    Status,
    Transition,
    make_scope,
)
from sidecar.records.drift import FeatureDrift, Kind, Statistic
from sidecar.records.quality import (
    FAILED_VERDICTS,
    JUDGEABLE_PATHS,
    UNBIASED_REASONS,
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

__all__ = [
    "FAILED_VERDICTS",
    "JUDGEABLE_PATHS",
    "UNBIASED_REASONS",
    "AlertState",
    "ErrorKind",
    "Event",
    "Exchange",
    "FeatureDrift",
    "Feedback",
    "JsonValue",
    "Kind",
    "LoggedRequest",
    "ModelIdentity",
    "SampleReason",
    "SchemaIssue",
    "SchemaVerdict",
    "Scope",
    "ScopeMatch",
    "ScoreSummary",
    "Silence",
    "Statistic",
    "Status",
    "Transition",
    "Verdict",
    "make_scope",
]
