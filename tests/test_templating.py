"""Workspace templates are data: sandboxed, confined to their folder, and on a budget of
work, value size and output, so a hostile template is refused, naming it, without reaching
Python or files and without allocating gigabytes or spinning."""

from __future__ import annotations

import tracemalloc
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jinja2 import DictLoader, StrictUndefined
from jinja2.sandbox import SecurityError

from mailer.errors import TemplateError
from mailer.model.composer import Composer, compose_apology
from mailer.model.facts import make_facts
from mailer.model.settings import SenderSettings
from mailer.model.templating import (
    MAX_OUTPUT,
    MAX_VALUE,
    TemplateEnvironment,
    printf_estimate,
    render_limited,
)

TZ = ZoneInfo("Europe/London")
AFTER = datetime(2026, 11, 25, 15, 0, tzinfo=TZ)
SENDER = SenderSettings(name="Sam Candidate", address="sam@example.com", phone="+44 1")
SECRET = "MAILER_SMTP_PASSWORD=hunter2-in-dotenv"
# A render may hold a few copies of a 100,000-character value; a gigabyte is far beyond.
MEMORY_BOUND = 64 * 1024 * 1024


def facts():
    return make_facts(
        situation="illness",
        to="ana.ruiz@acme.example",
        interviewer="Ana Ruiz",
        company="Acme",
        role="Data Engineer",
        interview="2026-11-25 10:00",
        tz=TZ,
        free=["2026-12-01 09:00-12:00", "2026-12-02 14:00-16:00"],
        var=["team=Data Platform"],
    )


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    """A workspace with a secret in .env next to its templates/ folder."""
    (tmp_path / ".env").write_text(SECRET + "\n")
    (tmp_path / "templates").mkdir()
    return tmp_path


def render(workspace: Path, body: str) -> str:
    (workspace / "templates" / "illness.txt.j2").write_text(
        "Subject: Sorry\n\nDear {{ interviewer }},\n" + body + "\n", encoding="utf-8"
    )
    return compose_apology(Composer(workspace / "templates"), facts(), SENDER, AFTER).text


@pytest.fixture
def peak_memory() -> Iterator[list[int]]:
    """The most memory Python allocated during the test, in bytes (read after the test)."""
    found: list[int] = []
    tracemalloc.start()
    yield found
    found.append(tracemalloc.get_traced_memory()[1])
    tracemalloc.stop()
    assert found[0] < MEMORY_BOUND, f"peak {found[0]:,} bytes"


@pytest.mark.parametrize(
    "body",
    [
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ cycler.__init__.__globals__.os.environ }}",
        "{{ joiner.__init__.__globals__['os'] }}",
        "{{ namespace.__init__.__globals__ }}",
        "{{ self.__init__.__globals__ }}",
        "{{ '{0.__class__.__mro__}'.format('') }}",
        "{{ interviewer.__class__.__base__.__subclasses__() }}",
        "{{ range.__globals__ }}",
        "{{ lipsum.__globals__.os }}",
    ],
)
def test_a_template_cannot_reach_python_internals(workspace: Path, body: str) -> None:
    """Verify attribute tricks that reach os or the interpreter are refused, naming the
    template."""
    with pytest.raises(
        TemplateError,
        match=r"^template (\S*/)?illness\.txt\.j2(:\d+)?: "
        r"(refused: access to attribute|'lipsum' is undefined)",
    ):
        render(workspace, body)


@pytest.mark.parametrize(
    "body",
    [
        "{% include '../.env' %}",
        "{% include '/etc/passwd' %}",
        "{% import '../.env' as secrets %}",
        "{% include 'secrets.txt' %}",  # a symlink to ../.env
        "{% include 'outside/.env' %}",  # a symlinked folder
    ],
)
def test_a_template_cannot_read_files_outside_its_folder(workspace: Path, body: str) -> None:
    """Verify includes and imports of paths or symlinks out of templates/ are refused,
    naming the template, and the secret appears nowhere."""
    (workspace / "templates" / "secrets.txt").symlink_to(workspace / ".env")
    (workspace / "templates" / "outside").symlink_to(workspace, target_is_directory=True)
    with pytest.raises(TemplateError, match=r"^template illness\.txt\.j2: ") as exc:
        render(workspace, body)
    assert "hunter2" not in str(exc.value)


ALLOCATIONS = [
    "{{ 'x' * 10**9 }}",
    "{{ [interviewer] * 10**9 }}",
    "{{ 10 ** (10 ** 10) }}",
    "{% set n = 10 ** 1000 %}{{ n * n * n * n * n }}",
    "{{ '%0999999999d' % 1 }}",
    "{{ '%*d' % (999999999, 1) }}",
    "{{ '%(a)s' * 20000 % {'a': 'y' * 90000} }}",
    "{{ '%0999999999d'|format(1) }}",
    "{{ '{:>999999999}'.format(1) }}",
    "{{ 'x'|center(999999999) }}",
    "{{ 'x'.ljust(999999999) }}",
    "{{ ('a\n' * 50000)|indent(99999) }}",
    "{{ range(100000)|join('x' * 99999) }}",
    "{{ ([{'a': 'x' * 99999}] * 100000)|join(attribute='a') }}",
    "{{ ('x' * 99999)|replace('x', 'y' * 99999) }}",
    "{{ ('x' * 99999).replace('x', 'y' * 99999) }}",
    "{{ [1]|batch(999999999, 'x')|list }}",
    "{{ [1]|slice(999999999)|list }}",
    "{{ ('x' * 99999)|wordwrap(1, wrapstring='y' * 999) }}",
    "{{ ['x']|tojson(indent=999999999) }}",
    "{{ ('&' * 90000)|forceescape|forceescape|forceescape }}",
    "{{ ([[1]] * 50000)|sum(start=[]) }}",
    "{% set ns = namespace(s='x') %}{% for i in range(64) %}{% set ns.s = ns.s ~ ns.s %}"
    "{% endfor %}{{ ns.s }}",
    "{% set ns = namespace() %}"
    + "".join(f"{{% set ns.a{i} = 'x' * 99999 %}}" for i in range(100))
    + "{{ ns }}",
    "{% set s = 'x' * 99999 %}{{ [" + ", ".join(["s"] * 1000) + "] }}",
    "{% set s %}{% for i in range(100000) %}{{ 'x' * 99999 }}{% endfor %}{% endset %}",
    "{% macro m() %}{% for i in range(100000) %}{{ 'x' * 99999 }}{% endfor %}{% endmacro %}"
    "{% set y = m() %}",
    "{{ lipsum(999999999) }}",
]


@pytest.mark.parametrize("body", ALLOCATIONS)
def test_a_template_asking_for_gigabytes_is_refused_with_memory_bounded(
    workspace: Path, body: str, peak_memory: list[int]
) -> None:
    """Verify operators, filters, methods, literals, namespaces and captured blocks that
    would build a gigabyte are refused before they do, naming the template (the fixture
    asserts the peak allocation stayed under 64 MB)."""
    with pytest.raises(TemplateError, match=r"^template (\S*/)?illness\.txt\.j2(:\d+)?: "):
        render(workspace, body)


SPINS = [
    "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
    "{% macro f(n) %}{% if n %}{{ f(n - 1) }}{{ f(n - 1) }}{% endif %}{% endmacro %}{{ f(60) }}",
    "{% set s = 'x' * 99999 %}{% for i in range(100000) %}{% if s == s ~ '' %}{% endif %}"
    "{% endfor %}",
    "{% for i in range(100000) %}{{ range(100000)|sum }}{% endfor %}",
    "{% for i in range(100000) %}{% include 'part.txt' %}{% endfor %}",
]


@pytest.mark.parametrize("body", SPINS)
def test_a_template_that_would_spin_is_stopped_by_its_work_budget(
    workspace: Path, body: str
) -> None:
    """Verify nested loops, exponential macro calls, repeated comparisons of long values and
    repeated includes end in a refusal for exceeding the work budget."""
    (workspace / "templates" / "part.txt").write_text("")
    with pytest.raises(TemplateError, match=r"refused: the template does more than [\d,]+ steps"):
        render(workspace, body)


def test_output_is_read_in_pieces_and_refused_past_the_limit(
    workspace: Path, peak_memory: list[int]
) -> None:
    """Verify a template rendering ten million characters is refused once it passes
    100,000."""
    with pytest.raises(TemplateError, match="renders over 100,000 characters"):
        render(workspace, "{% for i in range(100000) %}{{ 'y' * 99 }}{% endfor %}")


def test_recursion_and_runtime_errors_are_one_line_naming_the_template(
    workspace: Path,
) -> None:
    """Verify endless recursion, a recursive loop and a division by zero each give a
    one-line TemplateError naming the template."""
    for body, expected in (
        ("{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}", "RecursionError"),
        ("{% for x in [1] recursive %}{{ loop([1]) }}{% endfor %}", "recursive loops"),
        ("{{ 1 // 0 }}", "ZeroDivisionError"),
    ):
        with pytest.raises(TemplateError, match=expected) as exc:
            render(workspace, body)
        assert "illness.txt.j2" in str(exc.value) and "\n" not in str(exc.value)


def test_a_template_file_over_64_kb_is_refused(workspace: Path) -> None:
    """Verify an oversized template file is refused before it is read."""
    (workspace / "templates" / "huge.txt").write_text("x" * 70_000)
    with pytest.raises(TemplateError, match=r"huge\.txt is over 64 KB"):
        render(workspace, "{% include 'huge.txt' %}")


def test_ordinary_template_features_still_work(workspace: Path) -> None:
    """Verify filters, loops, macros, includes, namespaces, string methods and % formatting
    within the limits render as before."""
    (workspace / "templates" / "sign.txt").write_text("-- {{ sender_name|upper }}")
    text = render(
        workspace,
        "{% macro item(t) %}* {{ t|replace('–', '-') }}{% endmacro %}"
        "{% set ns = namespace(n=0) %}"
        "{% for t in free_times %}{% set ns.n = ns.n + 1 %}{{ item(t) }}\n{% endfor %}"
        "{{ ns.n }} times; team {{ team|default('none')|title }}; "
        "{{ '%s at %s' % (role, company) }}; {{ 'a, b'.split(', ')|join('+') }}; "
        "{{ interviewer.split()[0] }}; {{ (company ~ '!')|center(9) }}; {{ [3, 1, 2]|sort|sum }}\n"
        "{% include 'sign.txt' %}",
    )
    assert text.splitlines()[1:] == [
        "* Tuesday 1 December, 09:00-12:00",
        "* Wednesday 2 December, 14:00-16:00",
        "2 times; team Data Platform; Data Engineer at Acme; a+b; Ana;   Acme!  ; 6",
        "-- SAM CANDIDATE",
    ]


def test_the_default_templates_render_unchanged_in_the_sandbox() -> None:
    """Verify every default template still renders, well under the limits."""
    text = compose_apology(Composer(), facts(), SENDER, AFTER).text
    assert "Dear Ana," in text and "Tuesday 1 December, 09:00–12:00" in text
    assert len(text) < MAX_OUTPUT // 10


def test_printf_estimate_bounds_the_formatted_length() -> None:
    """Verify the % estimate is never below the real length, for keys, widths and
    precisions."""
    for fmt, args in (
        ("%s and %s", ("abc", "de")),
        ("%(a)s-%(b)5d-%(a)s", {"a": "xyz", "b": 7}),
        ("%-10.3f|%05d|%%|%x", (3.14159, 42, 255)),
        ("%((nested))s", {"(nested)": "v"}),
    ):
        assert printf_estimate(fmt, args) >= len(fmt % args)


def sandbox() -> TemplateEnvironment:
    return TemplateEnvironment(loader=DictLoader({}), undefined=StrictUndefined)


ATOMS = st.sampled_from(
    ["'x'", "'ab' * 40000", "s", "l", "n", "10 ** 300", "range(99999)", "99999", "999999999"]
)
OPS = st.sampled_from(["*", "**", "+", "%", "~"])
FILTERS = st.sampled_from(
    [
        "center(999999)",
        "indent(99999)",
        "join(s)",
        "replace('x', s)",
        "batch(99999, s)",
        "format(s, s)",
        "wordwrap(1, wrapstring=s)",
        "list",
        "string",
        "unique|list",
        "tojson(indent=99)",
        "forceescape",
        "urlencode",
        "sum",
        "sort",
        "reverse|list",
    ]
)


@st.composite
def expressions(draw: st.DrawFn, depth: int = 3) -> str:
    if depth == 0 or draw(st.booleans()):
        return draw(ATOMS)
    kind = draw(st.sampled_from(["op", "filter"]))
    if kind == "op":
        return f"({draw(expressions(depth - 1))} {draw(OPS)} {draw(expressions(depth - 1))})"
    return f"({draw(expressions(depth - 1))})|{draw(FILTERS)}"


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(expression=expressions(), turns=st.sampled_from([1, 1000, 100000]))
def test_any_mix_of_operators_and_filters_stays_within_the_bounds(
    expression: str, turns: int
) -> None:
    """Verify random mixes of multiplying operators and filters, in loops, either render
    within the output limit or are refused; memory stays under 64 MB either way."""
    source = (
        "{% set s = 'y' * 99999 %}{% set l = ['z'] * 99999 %}{% set n = 99999 %}"
        f"{{% for i in range({turns}) %}}{{{{ {expression} }}}}{{% endfor %}}"
    )
    tracemalloc.start()
    try:
        text = render_limited(sandbox().from_string(source), {})
        assert len(text) <= MAX_OUTPUT
    except (SecurityError, ArithmeticError, TypeError, ValueError, RecursionError):
        pass
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert peak < MEMORY_BOUND, (expression, peak)


class _Text(str):
    """A str subclass: written through the general path, not the plain-str shortcut."""


@pytest.mark.parametrize("kind", [str, _Text])
def test_a_written_value_is_spent_and_bounded_alike_as_str_or_subclass(kind: type) -> None:
    """Verify a plain str written by the template (the shortcut in _emit) is refused past
    MAX_VALUE in the same words as any other value, and that a long one spends the budget
    as before: 80,000 characters written 30 times (into a {% set %} block, which outputs
    nothing) run out the 500,000 units."""
    template = sandbox().from_string("{{ x }}")
    with pytest.raises(SecurityError) as refused:
        render_limited(template, {"x": kind("v" * (MAX_VALUE + 1))})
    assert str(refused.value) == (
        f"a value written by the template would hold over {MAX_VALUE:,} characters or items"
    )
    assert render_limited(template, {"x": kind("v" * MAX_VALUE)}) == "v" * MAX_VALUE
    spin = sandbox().from_string(
        "{% for i in range(30) %}{% set y %}{{ x }}{% endset %}{% endfor %}"
    )
    with pytest.raises(SecurityError, match="does more than"):
        render_limited(spin, {"x": kind("v" * 80_000)})
