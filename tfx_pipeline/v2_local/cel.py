"""The CEL subset that TFX's compiler emits for ``Cond`` (a task's ``triggerPolicy.condition``), evaluated over the
task's resolved input artifacts as the Vertex backend evaluates it.

Supported: ``inputs.artifacts['KEY'].artifacts[0].metadata['NAME']`` paths, number and string literals,
``== != < > <= >=``, ``&& || !`` and parentheses. A path to an input the task does not have is an error, as on the
backend.

Example::

    from tfx_pipeline.v2_local.cel import evaluate_condition

    condition = "(inputs.artifacts['model_blessing'].artifacts[0].metadata['blessed'] == 1.0)"
    evaluate_condition(condition, {"model_blessing": [blessing_artifact]}, "Pusher")  # True or False
"""
from __future__ import annotations

import re
from typing import Any

from tfx_pipeline.v2_local.artifact_store import Artifact
from tfx_pipeline.v2_local.errors import SpecError

_TOKEN = re.compile(r"\s*(?:(\d+\.\d*|\d+)|('[^']*'|\"[^\"]*\")|(==|!=|<=|>=|&&|\|\||[()\[\].<>!])|([A-Za-z_]\w*))")
_COMPARISONS = ("==", "!=", "<", ">", "<=", ">=")


def evaluate_condition(condition: str, inputs: dict[str, list[Artifact]], task: str) -> bool:
    """Evaluates the CEL subset that TFX's compiler emits for ``Cond`` over the task's input artifacts.

    ``inputs.artifacts['KEY'].artifacts[0].metadata['NAME']`` paths, number/string literals, ``== != < > <= >=``,
    ``&& || !`` and parentheses. A path to an input the task does not have is an error, as on the backend.
    """
    return _Evaluation(condition, inputs, task).result()


def _tokens(condition: str, task: str) -> list[tuple]:
    """``(number, string, operator, identifier)`` groups, one of them set, for each token of the condition."""
    tokens, pos = [], 0
    while pos < len(condition.rstrip()):
        match = _TOKEN.match(condition, pos)
        if not match:
            raise SpecError(f"{task}: cannot parse the trigger condition {condition!r} at {condition[pos:]!r}")
        tokens.append(match.groups())
        pos = match.end()
    return tokens


class _Evaluation:
    """One recursive-descent evaluation of a condition (disjunction > conjunction > negation > comparison >
    primary); ``position`` is the index of the next token."""

    def __init__(self, condition: str, inputs: dict[str, list[Artifact]], task: str):
        self.condition, self.inputs, self.task = condition, inputs, task
        self.tokens = _tokens(condition, task)
        self.position = 0
        self.view = {"artifacts": {k: {"artifacts": [{"metadata": a.metadata, "uri": a.uri, "name": a.name}
                                                     for a in v]} for k, v in inputs.items()}}

    def result(self) -> bool:
        value = self.disjunction()
        if self.position != len(self.tokens):
            rest = "".join(filter(None, self.tokens[self.position]))
            raise SpecError(f"{self.task}: trigger condition {self.condition!r}: unexpected {rest!r}")
        return bool(value)

    # ------------------------------------------------------------------ tokens
    def peek(self, kind: str | None = None):
        """The next token's operator (or, with ``kind`` n/s/i, its number/string/identifier), None if absent."""
        if self.position >= len(self.tokens):
            return None
        number, string, op, ident = self.tokens[self.position]
        return op if kind is None else {"n": number, "s": string, "i": ident}.get(kind)

    def take(self, op: str) -> None:
        if self.peek() != op:
            raise SpecError(f"{self.task}: trigger condition {self.condition!r}: expected {op!r}")
        self.position += 1

    def _next(self) -> tuple:
        self.position += 1
        return self.tokens[self.position - 1]

    # ------------------------------------------------------------------ grammar
    def disjunction(self):
        value = self.conjunction()
        while self.peek() == "||":
            self.take("||")
            value = self.conjunction() or value
        return value

    def conjunction(self):
        value = self.negation()
        while self.peek() == "&&":
            self.take("&&")
            value = self.negation() and value
        return value

    def negation(self):
        if self.peek() == "!":
            self.take("!")
            return not self.negation()
        return self.comparison()

    def comparison(self):
        left = self.primary()
        op = self.peek()
        if op not in _COMPARISONS:
            return left
        self.take(op)
        right = self.primary()
        if isinstance(left, (int, float)) and isinstance(right, (int, float)):
            left, right = float(left), float(right)
        return {"==": left == right, "!=": left != right, "<": left < right, ">": left > right,
                "<=": left <= right, ">=": left >= right}[op]

    def primary(self):
        if self.peek() == "(":
            self.take("(")
            value = self.disjunction()
            self.take(")")
            return value
        if self.peek("n") is not None:
            return float(self._next()[0])
        if self.peek("s") is not None:
            return self._next()[1][1:-1]
        if self.peek("i") != "inputs":
            raise SpecError(f"{self.task}: trigger condition {self.condition!r}: only inputs.artifacts[...] can be "
                            "read")
        self.position += 1
        return self.path()

    # ------------------------------------------------------------------ inputs.artifacts[...] paths
    def path(self) -> Any:
        """The value at ``inputs`` followed by ``.name`` and ``[key]`` steps (``inputs`` already taken)."""
        value, where = self.view, "inputs"
        while self.peek() in (".", "["):
            if self.peek() == ".":
                key = self.member()
                where += f".{key}"
            else:
                key = self.index()
                where += f"[{key!r}]"
            value = self.step(value, key, where)
        return value

    def member(self):
        self.take(".")
        key = self.peek("i")
        self.position += 1
        return key

    def index(self):
        self.take("[")
        key = self.peek("s")[1:-1] if self.peek("s") is not None else int(float(self.peek("n")))
        self.position += 1
        self.take("]")
        return key

    def step(self, value, key, where: str):
        if isinstance(key, int):
            if not isinstance(value, list) or key >= len(value):
                raise SpecError(f"{self.task}: trigger condition {self.condition!r}: {where} does not exist "
                                "(no artifact)")
            return value[key]
        if not isinstance(value, dict) or key not in value:
            have = ", ".join(sorted(self.inputs)) if where.startswith("inputs.artifacts[") else ""
            raise SpecError(f"{self.task}: trigger condition {self.condition!r} reads {where}, which this task "
                            f"does not have{f' (its input artifacts: {have})' if have else ''}")
        return value[key]
