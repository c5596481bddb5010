"""A Jinja2 environment for templates that are data, not code. Pure.

Workspace templates pass between a coach and candidates, so a template must not reach
Python (``''.__class__.__mro__``, ``cycler.__init__.__globals__.os``) or files outside its
folder, and must not make one render allocate or spin without end. Jinja2's
:class:`~jinja2.sandbox.SandboxedEnvironment` does the first (its immutable variant also
refuses ``list.append`` and friends) but not the rest: ``'x' * 10**9``, ``10**10**10``,
``'%0999999999d' % 1``, ``range(100000)|join(long_text)`` or two nested ``range(100000)``
loops each run in a single step or a tight loop it never looks at.

So every render has a budget, spent by the work the template asks for:

- each value a template builds (by an operator, a filter, a call, a literal, ``~``) may hold
  at most ``MAX_VALUE`` characters or items, counted through nested lists and dicts, and is
  estimated *before* the operation when the operation could multiply its input;
- every loop iteration, call, template load, compared or written value spends from
  ``MAX_WORK`` units (a character or an item is a unit);
- what the template renders is read piece by piece and refused past ``MAX_OUTPUT``.

The loops, outputs and comparisons are reached by rewriting the parsed template
(:class:`_Budgeter`) before Jinja2 compiles it.
"""

from __future__ import annotations

import contextvars
import functools
from collections.abc import Callable, Collection, Iterator, Mapping
from itertools import islice
from pathlib import Path
from typing import Any

from jinja2 import FileSystemLoader, nodes, pass_context
from jinja2.compiler import CodeGenerator, Frame
from jinja2.exceptions import TemplateNotFound
from jinja2.filters import make_attrgetter
from jinja2.loaders import split_template_path
from jinja2.runtime import Context, Undefined
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError
from jinja2.utils import Namespace
from jinja2.visitor import NodeTransformer

MAX_OUTPUT = 100_000  # characters one template may render
MAX_VALUE = 100_000  # characters or items in any one value a template builds
MAX_WORK = 500_000  # units one render may spend (about a microsecond each, see below)
MAX_INT_BITS = 4096  # numbers up to about 10**1233
MAX_SOURCE = 64 * 1024  # bytes in one template file

# String methods a template may call: none of them can make a string much longer, except
# replace, whose result is estimated first. format/format_map/center/ljust/zfill/join/... are
# left out (the filters do the same, within limits).
STR_METHODS = frozenset(
    {
        "capitalize",
        "casefold",
        "count",
        "endswith",
        "find",
        "index",
        "isalnum",
        "isalpha",
        "isascii",
        "isdecimal",
        "isdigit",
        "isidentifier",
        "islower",
        "isnumeric",
        "isprintable",
        "isspace",
        "istitle",
        "isupper",
        "lower",
        "lstrip",
        "partition",
        "removeprefix",
        "removesuffix",
        "replace",
        "rfind",
        "rindex",
        "rpartition",
        "rsplit",
        "rstrip",
        "split",
        "splitlines",
        "startswith",
        "strip",
        "swapcase",
        "title",
        "upper",
    }
)

_EACH, _EMIT, _CHARGE = "_mailer_each", "_mailer_emit", "_mailer_charge"
_BUDGET: contextvars.ContextVar[_Budget | None] = contextvars.ContextVar("template_budget")


# What each kind of work costs, in units: roughly its time on a slow machine, so that a
# render refused for its work has taken about a second at most.
LOOP_TURN = 1
CALL = 10  # a macro or filter call costs about ten loop turns
TEMPLATE_LOAD = 100
CHARS_PER_UNIT = 4  # characters or items handled (written, compared, built, counted)


class _Budget:
    def __init__(self, units: int) -> None:
        self.left = units

    def spend(self, units: int) -> None:
        self.left -= units
        if self.left < 0:
            raise SecurityError(f"the template does more than {MAX_WORK:,} steps of work")


def _spend(units: int) -> None:
    budget = _BUDGET.get(None)
    if budget is None:
        raise SecurityError("a template was rendered outside render_limited()")
    budget.spend(units)


# --- sizes ------------------------------------------------------------------------------------


_SCALARS = frozenset({int, float, bool, type(None)})


def size_of(value: Any, limit: int = MAX_VALUE) -> int:
    """Characters and items in ``value``, through nested containers; stops counting once past
    ``limit`` (so it costs at most about ``limit`` steps, whatever the value)."""
    total, stack = 0, [value]
    while stack and total <= limit:
        v = stack.pop()
        kind = type(v)
        if kind is str:
            total += len(v)
        elif kind in _SCALARS or isinstance(v, Undefined):
            continue
        elif kind is list or kind is tuple:
            total += len(v)
            stack.extend(x for x in islice(v, limit) if type(x) not in _SCALARS)
        elif isinstance(v, str):
            total += len(v)
        elif isinstance(v, Namespace):
            stack.append(object.__getattribute__(v, "_Namespace__attrs"))
        elif isinstance(v, Mapping):
            total += len(v)
            stack.extend(islice(v.keys(), limit))
            stack.extend(islice(v.values(), limit))
        elif isinstance(v, range):
            total += len(v)
        elif isinstance(v, Collection):
            total += len(v)
            stack.extend(x for x in islice(v, limit) if type(x) not in _SCALARS)
    return total


def _check_size(value: Any, what: str) -> int:
    n = size_of(value)
    if n > MAX_VALUE:
        raise SecurityError(f"{what} would hold over {MAX_VALUE:,} characters or items")
    return n


def _charged(value: Any, what: str) -> Any:
    """``value``, once it is known to be small enough; its size is spent."""
    _spend(_check_size(value, what) // CHARS_PER_UNIT)
    return value


def _refuse_above(estimate: int, what: str) -> None:
    if estimate > MAX_VALUE:
        raise SecurityError(
            f"{what} would build a value of about {estimate:,} characters or items "
            f"(at most {MAX_VALUE:,})"
        )


def _text_size(value: Any) -> int:
    """How long ``str(value)`` is, without building it when it is a container."""
    if isinstance(value, (str, Mapping, Collection, Namespace)):
        return size_of(value)
    return len(str(value))


# --- operators --------------------------------------------------------------------------------


def _is_int(v: Any) -> bool:
    return isinstance(v, int)


def _power_bits(base: Any, exponent: Any) -> int:
    if _is_int(base) and _is_int(exponent) and exponent > 0 and abs(base) > 1:
        return base.bit_length() * exponent
    return 0


def _binop_estimate(op: str, left: Any, right: Any) -> int:
    """The size of ``left OP right``, from the operands, before it is computed."""
    if op == "*":
        if _is_int(left) and _is_int(right):
            _refuse_bits(left.bit_length() + right.bit_length())
            return 0
        seq, n = (left, right) if _is_int(right) else (right, left)
        if _is_int(n) and isinstance(seq, (str, list, tuple)):
            return size_of(seq, MAX_VALUE // max(n, 1) + 1) * max(n, 0)
    elif op == "**":
        _refuse_bits(_power_bits(left, right))
    elif op == "+" and isinstance(left, (str, list, tuple)):
        return size_of(left) + size_of(right)
    elif op == "%" and isinstance(left, str):
        return printf_estimate(left, right)
    return 0


def _refuse_bits(bits: int) -> None:
    if bits > MAX_INT_BITS:
        raise SecurityError(f"a number of over {MAX_INT_BITS} bits is too large")


def printf_estimate(fmt: str, args: Any) -> int:
    """An upper bound on the length of ``fmt % args``: every conversion may be as wide as its
    width or precision, or as long as the longest argument. One pass over ``fmt``."""
    values = list(args.values()) if isinstance(args, Mapping) else args
    values = values if isinstance(values, (list, tuple)) else [values]
    widest = max((_text_size(v) for v in islice(values, MAX_VALUE)), default=0)
    total, i = len(fmt), fmt.find("%")
    while i >= 0 and total <= MAX_VALUE:
        i, width = _printf_spec(fmt, i + 1)
        total += width + widest
        i = fmt.find("%", i)
    return total


def _printf_spec(fmt: str, i: int) -> tuple[int, int]:
    """Read the conversion spec after a '%' at ``i``: where it ends, and its width/precision."""
    if i < len(fmt) and fmt[i] == "(":  # a mapping key, which may itself hold parentheses
        depth = 0
        while i < len(fmt):
            depth += {"(": 1, ")": -1}.get(fmt[i], 0)
            i += 1
            if depth == 0:
                break
    while i < len(fmt) and fmt[i] in "-#0 +":
        i += 1
    widest = 0
    for _ in range(2):  # width, then .precision
        start = i
        while i < len(fmt) and (fmt[i].isdigit() or fmt[i] == "*"):
            i += 1
        digits = fmt[start:i]
        if "*" in digits:
            raise SecurityError("a '*' width in a % format is not allowed")
        if len(digits) > 6 or (digits and int(digits) > MAX_VALUE):
            raise SecurityError(f"a % format width over {MAX_VALUE:,} is not allowed")
        widest = max(widest, int(digits or 0))
        if i < len(fmt) and fmt[i] == ".":
            i += 1
        else:
            break
    return i, widest


# --- filters ----------------------------------------------------------------------------------


def _listed(value: Any, what: str) -> list[Any]:
    """A lazy sequence as a list, refused before it grows past MAX_VALUE items."""
    if isinstance(value, (str, Undefined)):
        return value  # type: ignore[return-value]
    items = list(islice(iter(value), MAX_VALUE + 1))
    if len(items) > MAX_VALUE:
        raise SecurityError(f"{what} was given over {MAX_VALUE:,} items")
    return items


def _count(value: Any) -> int:
    return value if _is_int(value) else 0


def _indent_estimate(s: Any, width: Any = 4, *_: Any, **__: Any) -> int:
    text = str(s)
    unit = _count(width) if _is_int(width) else len(str(width))
    return len(text) + (text.count("\n") + 1) * unit


def _replace_estimate(s: Any, old: Any, new: Any, count: Any = None, **_: Any) -> int:
    text, old, new = str(s), str(old), str(new)
    hits = text.count(old) if old else len(text) + 1
    if _is_int(count) and count >= 0:
        hits = min(hits, count)
    return len(text) + hits * max(len(new) - len(old), 0)


def _wordwrap_estimate(s: Any, width: Any = 79, *args: Any, **kwargs: Any) -> int:
    wrapstring = kwargs.get("wrapstring", args[1] if len(args) > 1 else None) or "\n"
    return len(str(s)) * (1 + len(str(wrapstring)))


def _fill_estimate(value: Any, n: Any, fill_with: Any = None) -> int:
    """batch/slice: ``n`` groups, or groups of ``n``, the last padded with ``fill_with``."""
    return _count(n) * (1 + size_of(fill_with))


# Filters that can multiply what they are given: an estimate of their result from the
# arguments (without the context/environment Jinja2 may pass first).
_ESTIMATES: dict[str, Callable[..., int]] = {
    "center": lambda value, width=80: max(_count(width), len(str(value))),
    "indent": _indent_estimate,
    "replace": _replace_estimate,
    "format": lambda value, *args, **kwargs: printf_estimate(str(value), kwargs or args),
    "wordwrap": _wordwrap_estimate,
    "batch": _fill_estimate,
    "slice": _fill_estimate,
    "tojson": lambda value, indent=None: size_of(value) * (2 + _count(indent)),
    "join": lambda value, d="", attribute=None: _join_estimate(value, str(d)),
}


def _join_estimate(items: list[Any], separator: str) -> int:
    total = len(separator) * max(len(items) - 1, 0)
    for item in items:
        total += _text_size(item)
        if total > MAX_VALUE:
            break
    return total


def _bounded_filter(
    env: TemplateEnvironment, name: str, fn: Callable[..., Any]
) -> Callable[..., Any]:
    skip = 1 if getattr(fn, "jinja_pass_arg", None) is not None else 0
    estimate = _ESTIMATES.get(name)
    what = f"the filter {name!r}"

    @functools.wraps(fn)  # keeps jinja_pass_arg: Jinja2 still passes the context first
    def bounded(*args: Any, **kwargs: Any) -> Any:
        head, value, rest = args[:skip], args[skip], args[skip + 1 :]
        if name == "join":  # a lazy sequence is listed first, so it is counted (and not spent)
            value = _listed(value, what)
            attribute = kwargs.pop("attribute", rest[1] if len(rest) > 1 else None)
            rest = rest[:1]
            if attribute is not None and not isinstance(value, (str, Undefined)):
                value = list(map(make_attrgetter(env, attribute), value))
        start = kwargs.get("start", rest[1] if len(rest) > 1 else 0)
        if name == "sum" and not isinstance(start, (int, float)):
            raise SecurityError("the filter 'sum' adds numbers only")
        _spend(CALL + _check_size(value, what) // CHARS_PER_UNIT)
        if estimate is not None and not isinstance(value, Undefined):
            _refuse_above(estimate(value, *rest, **kwargs), what)
        return _charged(fn(*head, value, *rest, **kwargs), what)

    return bounded


@pass_context
def _each(context: Context, iterable: Any) -> Iterator[Any]:
    """A for loop's items, each spending a unit."""
    for item in iterable:
        _spend(LOOP_TURN)
        yield item


@pass_context
def _emit(context: Context, value: Any) -> Any:
    """A piece of output, in any buffer (macros and {% set %} blocks too), spent by length."""
    if type(value) is str:  # nearly every piece: what size_of and str() would do, inline
        if len(value) > MAX_VALUE:
            raise SecurityError(
                f"a value written by the template would hold over {MAX_VALUE:,} characters or items"
            )
        _spend(len(value) // CHARS_PER_UNIT)
        return value
    if isinstance(value, Undefined):
        return value  # Jinja2 raises its own error when it writes it
    _check_size(value, "a value written by the template")
    text = str(value)
    _spend(len(text) // CHARS_PER_UNIT)
    return text


@pass_context
def _charge(context: Context, value: Any) -> Any:
    """A value about to be compared, joined with ~ or built as a literal: spent by size."""
    return _charged(value, "a value in the template")


# --- the environment --------------------------------------------------------------------------


def _wrap(node: nodes.Expr, name: str) -> nodes.Filter:
    return nodes.Filter(node, name, [], [], None, None, lineno=node.lineno)


class _Budgeter(NodeTransformer):
    """Route the work no sandbox hook sees through the budget filters."""

    def __init__(self, generator: CodeGenerator) -> None:
        self.generator = generator

    def visit_For(self, node: nodes.For) -> nodes.Node:
        if node.recursive:
            # A recursive loop's inner loops iterate values no wrapper can reach.
            self.generator.fail("recursive loops are not allowed", node.lineno)
        node = self.generic_visit(node)
        node.iter = _wrap(node.iter, _EACH)
        return node

    def visit_Output(self, node: nodes.Output) -> nodes.Node:
        node = self.generic_visit(node)
        node.nodes = [_wrap(child, _EMIT) for child in node.nodes]
        return node

    def visit_Concat(self, node: nodes.Concat) -> nodes.Node:
        node = self.generic_visit(node)
        node.nodes = [_wrap(child, _CHARGE) for child in node.nodes]
        return _wrap(node, _CHARGE)

    def visit_Compare(self, node: nodes.Compare) -> nodes.Node:
        node = self.generic_visit(node)
        node.expr = _wrap(node.expr, _CHARGE)
        for operand in node.ops:
            operand.expr = _wrap(operand.expr, _CHARGE)
        return node

    def visit_Test(self, node: nodes.Test) -> nodes.Node:
        node = self.generic_visit(node)
        node.node = _wrap(node.node, _CHARGE)
        return node

    def _literal(self, node: nodes.Expr) -> nodes.Node:
        node = self.generic_visit(node)
        return _wrap(node, _CHARGE) if getattr(node, "ctx", "load") == "load" else node

    visit_List = visit_Tuple = visit_Dict = _literal


class _BudgetedCodeGenerator(CodeGenerator):
    def visit_Template(self, node: nodes.Template, frame: Frame | None = None) -> None:
        _Budgeter(self).visit(node)
        super().visit_Template(node, frame)


class ConfinedLoader(FileSystemLoader):
    """A folder's templates and nothing else: no path out of it (Jinja2 already refuses
    '..'), no symlink out of it, and no file over MAX_SOURCE bytes."""

    def get_source(self, environment: Any, template: str) -> tuple[str, str, Callable[[], bool]]:
        pieces = split_template_path(template)
        for folder in self.searchpath:
            path = Path(folder, *pieces)
            if path.is_file():
                if not path.resolve().is_relative_to(Path(folder).resolve()):
                    raise TemplateNotFound(template)
                if path.stat().st_size > MAX_SOURCE:
                    raise SecurityError(
                        f"template {template} is over {MAX_SOURCE // 1024} KB; is it a template?"
                    )
                break
        return super().get_source(environment, template)


class TemplateEnvironment(ImmutableSandboxedEnvironment):
    """The sandbox, with every render on a budget (see the module's docstring)."""

    code_generator_class = _BudgetedCodeGenerator
    intercepted_binops = frozenset({"+", "*", "**", "%"})

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.globals.pop("lipsum", None)  # lipsum(10**9) is a loop no budget sees
        self.filters = {name: _bounded_filter(self, name, fn) for name, fn in self.filters.items()}
        self.filters.update({_EACH: _each, _EMIT: _emit, _CHARGE: _charge})

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        if isinstance(obj, str) and attr not in STR_METHODS:
            return False
        return super().is_safe_attribute(obj, attr, value)

    def wrap_str_format(self, value: Any) -> None:
        return None  # str.format is simply not allowed (is_safe_attribute refuses it)

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        what = f"the operator {operator!r}"
        _spend(LOOP_TURN)
        _check_size(left, what), _check_size(right, what)
        _refuse_above(_binop_estimate(operator, left, right), what)
        return _charged(super().call_binop(context, operator, left, right), what)

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        what = f"calling {getattr(__obj, '__name__', type(__obj).__name__)!r}"
        _spend(CALL)
        for arg in (*args, *kwargs.values()):
            _check_size(arg, what)
        if getattr(__obj, "__name__", "") == "replace" and isinstance(
            getattr(__obj, "__self__", None), str
        ):
            _refuse_above(_replace_estimate(__obj.__self__, *args, **kwargs), what)
        return _charged(super().call(__context, __obj, *args, **kwargs), what)

    def getitem(self, obj: Any, argument: Any) -> Any:
        value = super().getitem(obj, argument)
        return _charged(value, "a slice") if isinstance(argument, slice) else value

    def get_template(self, *args: Any, **kwargs: Any) -> Any:
        if _BUDGET.get(None) is not None:  # an include, import or extends while rendering
            _spend(TEMPLATE_LOAD)
        return super().get_template(*args, **kwargs)

    def select_template(self, *args: Any, **kwargs: Any) -> Any:
        if _BUDGET.get(None) is not None:
            _spend(TEMPLATE_LOAD)
        return super().select_template(*args, **kwargs)


def render_limited(template: Any, variables: Mapping[str, Any]) -> str:
    """Render ``template`` on a fresh budget, reading its output piece by piece and stopping
    as soon as it passes MAX_OUTPUT characters."""
    token = _BUDGET.set(_Budget(MAX_WORK))
    try:
        pieces: list[str] = []
        length = 0
        for piece in template.generate(**variables):
            length += len(piece)
            if length > MAX_OUTPUT:
                raise SecurityError(f"the template renders over {MAX_OUTPUT:,} characters")
            pieces.append(piece)
        return "".join(pieces)
    finally:
        _BUDGET.reset(token)
