"""The resolver tasks' ``outputArtifactQueries``, answered from the local store as the Vertex backend answers them
from ML Metadata.

A filter is ``CLAUSE AND CLAUSE ...`` over ``schema_title``, ``state``, ``name`` and
``metadata.NAME.number_value|string_value``, with ``{{$.inputs.artifacts['KEY'].metadata['NAME']}}`` placeholders
filled from the task's input artifacts.

Example::

    from tfx_pipeline.v2_local.resolver import resolve_query

    blessed = resolve_query('schema_title="tfx.ModelBlessing" AND state=LIVE AND '
                            'metadata.blessed.number_value=1', {}, store, "model-blessing-resolver")
    # [the newest blessing artifact with blessed == 1] or []
"""
from __future__ import annotations

import re

from tfx_pipeline.v2_local.artifact_store import Artifact, Store
from tfx_pipeline.v2_local.errors import SpecError

_PLACEHOLDER = re.compile(r"\{\{\$\.inputs\.artifacts\['([^']+)'\]\.metadata\['([^']+)'\]\}\}")
_CLAUSE = re.compile(r'^(schema_title|state|name|metadata\.(\w+)\.(number_value|string_value))\s*=\s*("([^"]*)"|\S+)$')


def resolve_query(query: str, inputs: dict[str, list[Artifact]], store: Store, task: str) -> list[Artifact]:
    """The newest recorded artifact matching an ``outputArtifactQueries`` filter (``A AND B ...``), or none."""
    try:
        query = _PLACEHOLDER.sub(lambda match: _input_metadata(inputs, *match.groups()), query)
    except LookupError:
        return []  # its input resolved to nothing: so does the query
    clauses = _parse_clauses(query, task)
    found = [a for a in store.artifacts.values() if _matches(a, clauses)]
    return [max(found, key=lambda a: (a.create_time, int(a.name.rsplit("/", 1)[1])))] if found else []


def _input_metadata(inputs: dict[str, list[Artifact]], key: str, prop: str) -> str:
    """The text of a placeholder: the first input artifact's metadata value (LookupError where there is none)."""
    artifacts = inputs.get(key) or []
    if not artifacts or prop not in artifacts[0].metadata:
        raise LookupError
    value = artifacts[0].metadata[prop]
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)


def _parse_clauses(query: str, task: str) -> list[tuple]:
    """``(field, metadata property or None, value kind or None, value)`` for each clause of the filter."""
    clauses = []
    for clause in (c.strip() for c in query.split(" AND ")):
        match = _CLAUSE.match(clause)
        if not match:
            raise SpecError(f"{task}: unsupported resolver filter clause {clause!r} in {query!r}")
        field, prop, kind, raw, quoted = match.groups()
        clauses.append((field, prop, kind, quoted if quoted is not None else raw))
    return clauses


def _matches(artifact: Artifact, clauses: list[tuple]) -> bool:
    for field, prop, kind, value in clauses:
        if field == "schema_title" and artifact.schema_title != value:
            return False
        if field == "state" and artifact.state != value:
            return False
        if field == "name" and artifact.name != value:
            return False
        if prop is not None and not _metadata_matches(artifact.metadata.get(prop), kind, value):
            return False
    return True


def _metadata_matches(have, kind: str, value: str) -> bool:
    if kind == "number_value":
        return isinstance(have, (int, float)) and not isinstance(have, bool) and float(have) == float(value)
    return have == value
