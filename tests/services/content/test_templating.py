"""The template sandbox: no internals, bounded loops, time and output; variables validated."""

from __future__ import annotations

import time

import pytest

from services.content.templating import (
    MAX_ITERATIONS,
    TemplateError,
    VariableSpec,
    declared_names,
    render,
    validate_variables,
)


def test_renders_variables_filters_conditions_and_loops() -> None:
    src = (
        "Hi {{ name|title }}{% if vip %}, VIP{% endif %}: {% for s in sizes %}{{ s }} {% endfor %}"
    )
    out = render(src, {"name": "ann lee", "vip": True, "sizes": ["S", "M"]})
    assert out == "Hi Ann Lee, VIP: S M "
    assert declared_names(src) == {"name", "vip", "sizes"}


@pytest.mark.parametrize(
    "src",
    [
        "{{ name.__class__.__mro__ }}",
        "{{ name['__class__'] }}",
        "{{ name|attr('__class__') }}",
        "{{ __builtins__ }}",
        "{{ name.upper() }}",  # only range() may be called
        "{{ cycler.__init__.__globals__ }}",
        "{{ lipsum() }}",
        "{% set x = 1 %}{{ x }}",
        "{% macro m() %}{% endmacro %}",
        "{% include 'other' %}",
        "{% extends 'base' %}",
        "{% for x in [1] recursive %}{{ loop(x) }}{% endfor %}",
        "{{ name|format('%99999999s') }}",
    ],
)
def test_templates_that_reach_internals_or_unsafe_features_are_refused(src: str) -> None:
    with pytest.raises(TemplateError) as exc:
        render(src, {"name": "x"})
    assert exc.value.kind == "forbidden"


def test_a_template_that_loops_for_ever_is_stopped_quickly() -> None:
    t0 = time.perf_counter()
    with pytest.raises(TemplateError) as exc:
        render("{% for i in range(99999) %}{% for j in range(99999) %}{% endfor %}{% endfor %}", {})
    assert exc.value.kind == "timeout"
    assert time.perf_counter() - t0 < 2
    # Loops over data are counted too, not only range().
    with pytest.raises(TemplateError):
        render(
            "{% for a in xs %}{% for b in xs %}{% for c in xs %}{% endfor %}{% endfor %}{% endfor %}",
            {"xs": list(range(100))},
        )
    assert render("{% for i in range(10) %}.{% endfor %}", {}) == ".........."
    assert MAX_ITERATIONS >= 1000


def test_output_and_values_are_bounded() -> None:
    with pytest.raises(TemplateError) as exc:
        render("{{ 'x' * 100000000 }}", {})
    assert exc.value.kind == "output"
    with pytest.raises(TemplateError):
        render("{{ 9 ** 99999 }}", {})
    with pytest.raises(TemplateError) as exc:
        render("{% for i in range(9000) %}{{ s }}{% endfor %}", {"s": "y" * 100})
    assert exc.value.kind == "output"


def test_undefined_variables_and_syntax_errors() -> None:
    with pytest.raises(TemplateError) as exc:
        render("Hi {{ nobody }}", {})
    assert exc.value.kind == "variables"
    with pytest.raises(TemplateError) as exc:
        render("Hi {{ name ", {"name": "x"})
    assert exc.value.kind == "syntax"


def test_variables_are_validated_against_their_declaration() -> None:
    specs = [
        VariableSpec("name", "string", max_length=10),
        VariableSpec("discount", "integer"),
        VariableSpec("link", "url", required=False),
    ]
    assert validate_variables(specs, {"name": "Ann", "discount": 20}) == {
        "name": "Ann",
        "discount": 20,
    }
    for bad, loc in [
        ({"name": "Ann"}, "discount"),
        ({"name": "A" * 11, "discount": 1}, "name"),
        ({"name": "Ann", "discount": "20"}, "discount"),
        ({"name": "Ann", "discount": 1, "link": "javascript:alert(1)"}, "link"),
        ({"name": "Ann", "discount": 1, "extra": 1}, "extra"),
    ]:
        with pytest.raises(TemplateError) as exc:
            validate_variables(specs, bad)
        assert exc.value.kind == "variables" and exc.value.loc == ["variables", loc]
