"""Named JSON schemas from a directory, compiled once; request-supplied schemas cached by hash."""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from pathlib import Path
from typing import Any

import orjson
from jsonschema import Draft202012Validator, FormatChecker
from jsonschema.exceptions import SchemaError
from jsonschema.protocols import Validator
from jsonschema.validators import validator_for

from sidecar.errors import ConfigError

FORMAT_CHECKER = FormatChecker()
_REQUEST_CACHE_SIZE = 256


def compile_schema(schema: Any) -> Validator:
    """A validator for ``schema`` (its ``$schema`` dialect, draft 2020-12 by default), formats on.

    Raises ``SchemaError`` when the schema is not a valid schema.
    """
    cls = validator_for(schema, default=Draft202012Validator)
    cls.check_schema(schema)
    validator: Validator = cls(schema, format_checker=FORMAT_CHECKER)
    return validator


def _pointer(error: SchemaError) -> str:
    return "".join(f"/{part}" for part in error.absolute_path) or "/"


class SchemaRegistry:
    """Schemas by name (the file name without ``.json``)."""

    def __init__(self, validators: dict[str, Validator] | None = None) -> None:
        self._named = dict(validators or {})
        self._by_hash: OrderedDict[str, Validator | None] = OrderedDict()

    @classmethod
    def load(cls, directory: str | Path) -> SchemaRegistry:
        """Compile every ``*.json`` in ``directory``; a bad file fails with its name and pointer."""
        folder = Path(directory)
        if not folder.is_dir():
            return cls()
        validators: dict[str, Validator] = {}
        for path in sorted(folder.glob("*.json")):
            try:
                schema = orjson.loads(path.read_bytes())
            except orjson.JSONDecodeError as exc:
                raise ConfigError(f"schema file {path}: not valid JSON ({exc})") from exc
            try:
                validators[path.stem] = compile_schema(schema)
            except SchemaError as exc:
                raise ConfigError(
                    f"schema file {path}: invalid schema at {_pointer(exc)}: {exc.message}"
                ) from exc
        return cls(validators)

    def names(self) -> list[str]:
        return sorted(self._named)

    def get(self, name: str) -> Validator | None:
        return self._named.get(name)

    def for_request_schema(self, schema: Any) -> Validator | None:
        """Compile a schema sent in a request (cached by content); None when it is invalid."""
        digest = hashlib.sha256(orjson.dumps(schema, option=orjson.OPT_SORT_KEYS)).hexdigest()
        if digest in self._by_hash:
            self._by_hash.move_to_end(digest)
            return self._by_hash[digest]
        try:
            validator: Validator | None = compile_schema(schema)
        except (SchemaError, TypeError, ValueError):
            validator = None
        self._by_hash[digest] = validator
        if len(self._by_hash) > _REQUEST_CACHE_SIZE:
            self._by_hash.popitem(last=False)
        return validator
