"""The kinds of value a setting takes: the section base and the constrained types.

A constraint is declared once, on the type (``msgspec.Meta``): msgspec enforces it while the
file is read, :mod:`.explain` turns a violation into ``key: must ..., got ...`` (``extra={"must":
...}`` words it when the bounds alone would not), and :mod:`.reference` prints it in
docs/configuration.md. Every field adds its own ``Meta(description=...)``.
"""

from __future__ import annotations

import typing
from typing import Annotated, Any, Literal

import msgspec
import msgspec.inspect as mi
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


def unwrap(node: Any) -> tuple[Any, dict[str, Any]]:
    """A ``msgspec.inspect`` type without its Metadata layers and its ``| None``, and what those
    layers declared (``description``, ``extra`` keys), the field's own over its alias's."""
    meta: dict[str, Any] = {}
    while True:
        if isinstance(node, mi.Metadata):
            meta = {**(node.extra or {}), **(node.extra_json_schema or {}), **meta}
            node = node.type
        elif isinstance(node, mi.UnionType):
            others = [member for member in node.types if not isinstance(member, mi.NoneType)]
            if len(others) != 1:
                return node, meta
            node = others[0]
        else:
            return node, meta


def declared_literal(struct: type, name: str) -> list[str]:
    """The values of the ``Literal`` in field ``name``'s annotation, in the order written
    (``msgspec.inspect`` sorts them); empty when it has none."""
    annotation: Any = typing.get_type_hints(struct, include_extras=True).get(name)
    while annotation is not None and typing.get_origin(annotation) is not Literal:
        arguments = [a for a in typing.get_args(annotation) if a is not type(None)]
        annotation = arguments[0] if arguments else None
    return [str(value) for value in typing.get_args(annotation)] if annotation else []
