"""The kinds of value a setting takes: the section base and the constrained types.

A constraint is declared once, on the type (``msgspec.Meta``): msgspec enforces it while the
file is read, :mod:`.explain` turns a violation into ``key: must ..., got ...`` (``extra={"must":
...}`` words it when the bounds alone would not), and :mod:`.reference` prints it in
docs/configuration.md. Every field adds its own ``Meta(description=...)``.
"""

from __future__ import annotations

from typing import Annotated

import msgspec
from msgspec import Meta

MiB = 1024 * 1024


class Section(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """One YAML section: unknown keys are errors, every key is passed by name."""


PositiveInt = Annotated[int, Meta(gt=0)]
PositiveFloat = Annotated[float, Meta(gt=0)]
NonNegativeInt = Annotated[int, Meta(ge=0)]
NonNegativeFloat = Annotated[float, Meta(ge=0)]
Port = Annotated[
    int, Meta(ge=0, le=65535, extra={"must": "be a TCP port 0-65535 (0 picks a free one)"})
]
Share = Annotated[float, Meta(ge=0, le=1, extra={"must": "be a share between 0 and 1 (0.05 = 5%)"})]
OpenShare = Annotated[float, Meta(gt=0, lt=1, extra={"must": "be strictly between 0 and 1"})]
HttpUrl = Annotated[
    str, Meta(pattern="^https?://", extra={"must": "start with http:// or https://"})
]
