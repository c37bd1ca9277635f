"""Drift: per-request features, and statistics comparing a reference window with a current one.

The pure core (work in progress: the baseline store, ``drift_checks`` table and scheduled job
come next). :mod:`sidecar.drift.features` extracts :class:`RequestFeatures` from each logged
row and compares two windows of them; :mod:`sidecar.drift.stats` holds the numerical and
categorical tests (Evidently's defaults); :mod:`sidecar.drift.text` the script, word-bag and
text-drift parts; :mod:`sidecar.drift.embeddings` the sentence vectors of prompts and outputs
(``drift.embeddings``) and :mod:`sidecar.drift.semantic` the MMD permutation test on them.
"""

from sidecar.drift.features import (
    CATEGORICAL_FEATURES,
    NUMERICAL_FEATURES,
    TEXT_FEATURES,
    DatasetDrift,
    RequestFeatures,
    compare_windows,
    dataset_drift,
    extract_features,
    share_drifted,
)
from sidecar.drift.stats import (
    DEFAULT_OPTIONS,
    DriftOptions,
    categorical_drift,
    numerical_drift,
    psi,
)
from sidecar.drift.text import text_drift
from sidecar.records import FeatureDrift

__all__ = [
    "CATEGORICAL_FEATURES",
    "DEFAULT_OPTIONS",
    "NUMERICAL_FEATURES",
    "TEXT_FEATURES",
    "DatasetDrift",
    "DriftOptions",
    "FeatureDrift",
    "RequestFeatures",
    "categorical_drift",
    "compare_windows",
    "dataset_drift",
    "extract_features",
    "numerical_drift",
    "psi",
    "share_drifted",
    "text_drift",
]
