"""Copy templates rendered in Jinja2's sandbox, bounded in what they may use, time and output.

Defence in depth, because a template is code written by a tenant's user:
1. The AST is checked before anything runs: only expression and control nodes that copy needs
   (output, if, for, filters from an allow-list); no set/macro/include/import/extends/call
   blocks (no way to build strings that double in size), no name or attribute starting with "_"
   (no path to Python internals), no recursive loops.
2. It runs in `ImmutableSandboxedEnvironment` (attribute and call checks, no mutation of lists
   and dicts) with StrictUndefined and no globals but a bounded `range`.
3. Every loop's iterable is wrapped in a guard that counts iterations and checks a deadline, so a
   nested loop cannot run for ever; `*` and `**` are intercepted and size-checked; the output is
   streamed and cut at a byte budget.
"""

from __future__ import annotations

import datetime as dt
import re
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from jinja2 import StrictUndefined, TemplateSyntaxError, UndefinedError, meta, nodes
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment

MAX_SOURCE = 20_000
MAX_OUTPUT = 20_000
MAX_ITERATIONS = 10_000
MAX_SECONDS = 0.5
MAX_VALUE = 5_000

ALLOWED_NODES: tuple[type[nodes.Node], ...] = (
    nodes.Template,
    nodes.Output,
    nodes.TemplateData,
    nodes.Name,
    nodes.Const,
    nodes.Getattr,
    nodes.Getitem,
    nodes.Slice,
    nodes.Filter,
    nodes.Test,
    nodes.If,
    nodes.For,
    nodes.CondExpr,
    nodes.Compare,
    nodes.Operand,
    nodes.And,
    nodes.Or,
    nodes.Not,
    nodes.Neg,
    nodes.Pos,
    nodes.Concat,
    nodes.Add,
    nodes.Sub,
    nodes.Mul,
    nodes.Div,
    nodes.FloorDiv,
    nodes.Mod,
    nodes.Pow,
    nodes.List,
    nodes.Tuple,
    nodes.Dict,
    nodes.Pair,
    nodes.Keyword,
    nodes.Call,  # only `range(...)` and `loop.cycle(...)`, checked below
)
ALLOWED_FILTERS = frozenset(
    {
        "upper", "lower", "title", "capitalize", "trim", "default", "d", "truncate", "join",
        "length", "count", "round", "int", "float", "first", "last", "abs", "string",
        "striptags", "wordcount", "e", "escape", "sort", "unique", "min", "max", "sum",
    }
)  # fmt: skip
VARIABLE_TYPES = ("string", "integer", "number", "url", "date", "boolean")
NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,39}$")


class TemplateError(ValueError):
    """The template or its variables are refused; `kind` says why (for problem+json)."""

    def __init__(self, kind: str, msg: str, loc: Sequence[str | int] = ()) -> None:
        super().__init__(msg)
        self.kind = kind  # syntax | forbidden | timeout | output | variables
        self.msg = msg
        self.loc = list(loc)


@dataclass(frozen=True)
class VariableSpec:
    name: str
    type: str = "string"
    required: bool = True
    max_length: int = 200
    example: Any = None

    def sample(self) -> Any:
        if self.example is not None:
            return self.example
        return {
            "string": "Sample",
            "integer": 10,
            "number": 9.99,
            "url": "https://example.com/?utm_source=s&utm_medium=m&utm_campaign=c",
            "date": "2025-11-28",
            "boolean": True,
        }[self.type]


class _Budget:
    def __init__(self) -> None:
        self.iterations = 0
        self.deadline = time.monotonic() + MAX_SECONDS

    def tick(self) -> None:
        self.iterations += 1
        if self.iterations > MAX_ITERATIONS:
            raise TemplateError("timeout", f"the template loops more than {MAX_ITERATIONS} times")
        if time.monotonic() > self.deadline:
            raise TemplateError("timeout", f"the template ran longer than {MAX_SECONDS} s")


class _Env(ImmutableSandboxedEnvironment):
    intercepted_binops = frozenset({"*", "**"})

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "**":
            if isinstance(right, int | float) and abs(right) > 64:
                raise TemplateError("forbidden", "exponent too large")
            return left**right
        if isinstance(left, str | list | tuple) or isinstance(right, str | list | tuple):
            seq, times = (left, right) if isinstance(left, str | list | tuple) else (right, left)
            if not isinstance(times, int) or len(seq) * max(times, 0) > MAX_OUTPUT:
                raise TemplateError("output", "the template builds a value over the output limit")
        return left * right


def _env() -> _Env:
    env = _Env(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)
    env.globals.clear()
    env.filters = {k: v for k, v in env.filters.items() if k in ALLOWED_FILTERS}
    return env


_ENV = _env()
_GUARD = "guard__"  # a name no accepted template can use (names with "_" are refused)


def check_source(source: str) -> nodes.Template:
    """Parse and vet a template; raise TemplateError("syntax" | "forbidden")."""
    if len(source) > MAX_SOURCE:
        raise TemplateError("forbidden", f"template longer than {MAX_SOURCE} characters")
    try:
        ast = _ENV.parse(source)
    except TemplateSyntaxError as exc:
        raise TemplateError("syntax", f"line {exc.lineno}: {exc.message}") from exc
    for node in ast.find_all(nodes.Node):
        if not isinstance(node, ALLOWED_NODES):
            raise TemplateError("forbidden", f"{type(node).__name__} is not allowed in copy")
        if isinstance(node, nodes.Name) and node.name.startswith("_"):
            raise TemplateError("forbidden", f"the name {node.name!r} reaches internals")
        if isinstance(node, nodes.Getattr) and node.attr.startswith("_"):
            raise TemplateError("forbidden", f"the attribute {node.attr!r} reaches internals")
        if isinstance(node, nodes.Getitem):
            arg = node.arg
            if isinstance(arg, nodes.Const) and str(arg.value).startswith("_"):
                raise TemplateError("forbidden", f"the key {arg.value!r} reaches internals")
        if isinstance(node, nodes.Filter) and node.name not in ALLOWED_FILTERS:
            raise TemplateError("forbidden", f"the filter {node.name!r} is not allowed")
        if isinstance(node, nodes.For) and node.recursive:
            raise TemplateError("forbidden", "recursive loops are not allowed")
        if isinstance(node, nodes.Call):
            target = node.node
            ok = (isinstance(target, nodes.Name) and target.name == "range") or (
                isinstance(target, nodes.Getattr)
                and isinstance(target.node, nodes.Name)
                and target.node.name == "loop"
                and target.attr == "cycle"
            )
            if not ok or node.dyn_args is not None or node.dyn_kwargs is not None:
                raise TemplateError("forbidden", "only range() and loop.cycle() may be called")
    return ast


def declared_names(source: str) -> set[str]:
    return set(meta.find_undeclared_variables(check_source(source))) - {"range"}


def _guarded(ast: nodes.Template) -> nodes.Template:
    for loop in ast.find_all(nodes.For):
        loop.iter = nodes.Call(nodes.Name(_GUARD, "load"), [loop.iter], [], None, None)
    return ast


def validate_variables(specs: Sequence[VariableSpec], values: Mapping[str, Any]) -> dict[str, Any]:
    by_name = {s.name: s for s in specs}
    errors: list[tuple[list[str | int], str]] = []
    for name in values:
        if name not in by_name:
            errors.append((["variables", name], "not a declared variable"))
    out: dict[str, Any] = {}
    for spec in specs:
        if spec.name not in values or values[spec.name] is None:
            if spec.required:
                errors.append((["variables", spec.name], "required"))
            continue
        value = values[spec.name]
        ok = True
        if spec.type in ("string", "url"):
            ok = isinstance(value, str) and len(value) <= spec.max_length
            if ok and spec.type == "url":
                ok = bool(re.match(r"^https?://[^\s]+$", value))
        elif spec.type == "integer":
            ok = isinstance(value, int) and not isinstance(value, bool)
        elif spec.type == "number":
            ok = isinstance(value, int | float) and not isinstance(value, bool)
        elif spec.type == "boolean":
            ok = isinstance(value, bool)
        elif spec.type == "date":
            try:
                dt.date.fromisoformat(str(value))
            except ValueError:
                ok = False
        if not ok:
            errors.append(
                (["variables", spec.name], f"expected a {spec.type} (max {spec.max_length})")
            )
        out[spec.name] = value
    if errors:
        raise TemplateError("variables", errors[0][1], errors[0][0])
    return out


def render(source: str, variables: Mapping[str, Any]) -> str:
    """Render a vetted template with validated variables, within the time and output budget."""
    if not source:
        return ""
    ast = _guarded(check_source(source))
    budget = _Budget()

    def guard(iterable: Iterable[Any]) -> Iterator[Any]:
        for item in iterable:
            budget.tick()
            yield item

    def bounded_range(*args: int) -> Iterator[int]:
        for i in range(*args):
            budget.tick()
            yield i

    try:
        template = _ENV.from_string(ast, globals={_GUARD: guard, "range": bounded_range})
        out: list[str] = []
        size = 0
        for chunk in template.generate(**variables):
            size += len(chunk)
            if size > MAX_OUTPUT:
                raise TemplateError("output", f"the output is over {MAX_OUTPUT} characters")
            if time.monotonic() > budget.deadline:
                raise TemplateError("timeout", f"the template ran longer than {MAX_SECONDS} s")
            out.append(chunk)
        return "".join(out)
    except TemplateError:
        raise
    except SecurityError as exc:
        raise TemplateError("forbidden", f"the template reaches internals: {exc}") from exc
    except UndefinedError as exc:
        raise TemplateError("variables", f"undefined variable: {exc.message}") from exc
    except (TypeError, ValueError, ArithmeticError, OverflowError) as exc:
        raise TemplateError("syntax", f"the template failed: {exc}") from exc
