"""Named JSON schemas from a directory, compiled once; request-supplied schemas cached by hash.

Schemas compile with jsonschema-rs, whose regular expressions cannot backtrack without bound:
a request's schema (attacker-controlled, like the output it is checked against) gets the
linear-time engine only (Rust's ``regex``: no lookaround, no backreferences); the operator's
named schemas may use lookaround and backreferences, matched with a backtracking limit
(``fancy-regex``), past which the verdict is ``check_timeout``. docs/benchmarks.md has the
measurements behind the choice.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema_rs
import orjson
from jsonschema_rs import Validator

from sidecar.errors import ConfigError

_REQUEST_CACHE_SIZE = 256
# Compiled sizes: a request's patterns compile to at most 1 MiB each (Rust's default is 10 MiB),
# which bounds the per-character cost of matching too.
REQUEST_PATTERNS = jsonschema_rs.RegexOptions(size_limit=1 << 20, dfa_size_limit=1 << 20)
NAMED_PATTERNS = jsonschema_rs.FancyRegexOptions(backtrack_limit=100_000)
_LINEAR_ONLY = (
    "request schemas are matched with a linear-time regex engine, "
    "without lookaround or backreferences"
)


@dataclass(frozen=True, slots=True)
class Unusable:
    """A schema that does not compile, and why (for the ``schema_error`` verdict)."""

    reason: str


class InvalidSchema(ValueError):
    def __init__(self, pointer: str, message: str) -> None:
        super().__init__(f"invalid schema at {pointer}: {message}")
        self.pointer = pointer
        self.message = message


def compile_schema(schema: Any, *, linear_only: bool = False) -> Validator:
    """A validator for ``schema`` (its ``$schema`` dialect, draft 2020-12 by default), formats
    on, ``$ref`` never fetched over the network. Raises :class:`InvalidSchema`."""
    options = REQUEST_PATTERNS if linear_only else NAMED_PATTERNS
    try:
        return jsonschema_rs.validator_for(
            schema, validate_formats=True, offline=True, pattern_options=options
        )
    except jsonschema_rs.ValidationError as exc:
        pointer = "".join(f"/{part}" for part in exc.instance_path) or "/"
        message = exc.message[:300]
        if linear_only and 'is not a "regex"' in message:
            message = f"{message} ({_LINEAR_ONLY})"
        raise InvalidSchema(pointer, message) from exc
    except (jsonschema_rs.ReferencingError, ValueError, TypeError) as exc:
        raise InvalidSchema("/", str(exc).splitlines()[0][:300] if str(exc) else "") from exc


class SchemaRegistry:
    """Schemas by name (the file name without ``.json``)."""

    def __init__(self, validators: dict[str, Validator] | None = None) -> None:
        self._named = dict(validators or {})
        self._by_hash: OrderedDict[str, Validator | Unusable] = OrderedDict()

    @classmethod
    def load(cls, directory: str | Path, *, missing_ok: bool = True) -> SchemaRegistry:
        """Compile every ``*.json`` in ``directory``; a bad file fails with its name and pointer.

        A missing directory is an empty registry, unless ``missing_ok`` is false (a reload:
        the directory was there, so its absence is a mistake, not "no schemas").
        """
        folder = Path(directory)
        if not folder.is_dir():
            if missing_ok:
                return cls()
            raise ConfigError(f"compliance.schemas_dir {folder} is not a directory (or is gone)")
        validators: dict[str, Validator] = {}
        for path in sorted(folder.glob("*.json")):
            try:
                schema = orjson.loads(path.read_bytes())
            except orjson.JSONDecodeError as exc:
                raise ConfigError(f"schema file {path}: not valid JSON ({exc})") from exc
            try:
                validators[path.stem] = compile_schema(schema)
            except InvalidSchema as exc:
                raise ConfigError(f"schema file {path}: {exc}") from exc
        return cls(validators)

    def names(self) -> list[str]:
        return sorted(self._named)

    def get(self, name: str) -> Validator | None:
        return self._named.get(name)

    def for_request_schema(self, schema: Any) -> Validator | Unusable:
        """Compile a schema sent in a request (cached by content), linear-time patterns only."""
        try:
            digest = hashlib.sha256(orjson.dumps(schema, option=orjson.OPT_SORT_KEYS)).hexdigest()
        except (TypeError, orjson.JSONEncodeError):
            return Unusable("the request's schema cannot be serialised")
        if digest in self._by_hash:
            self._by_hash.move_to_end(digest)
            return self._by_hash[digest]
        compiled: Validator | Unusable
        try:
            compiled = compile_schema(schema, linear_only=True)
        except InvalidSchema as exc:
            compiled = Unusable(f"the request's schema is not usable: {exc}")
        self._by_hash[digest] = compiled
        if len(self._by_hash) > _REQUEST_CACHE_SIZE:
            self._by_hash.popitem(last=False)
        return compiled
