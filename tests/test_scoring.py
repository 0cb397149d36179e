from __future__ import annotations

import math

import pytest

from ladder.errors import LadderError
from ladder.scoring.metrics import METRICS
from ladder.scoring.stats import estimate, mcnemar_exact, paired, wilson


@pytest.mark.parametrize("name", METRICS.names())
def test_every_metric_scores_in_unit_interval(name):
    fn = METRICS.get(name).fn
    for pred, gold in [("a", "a"), ("", "x"), ('{"a": 1}', '{"a": 1}'), ("b c", "c d"), ("{", "{}")]:
        value = fn(pred, gold)
        assert 0.0 <= value <= 1.0
    assert fn("same", "same") == 1.0 or name.startswith("json")


def test_exact_match_normalization():
    em = METRICS.get("exact_match").fn
    assert em("  Get_Weather \n", "get_weather") == 1.0
    assert em("ﬁne", "fine") == 1.0  # NFKC folds the ligature
    assert em("a  b", "a b") == 1.0
    assert em("get_weather.", "get_weather") == 0.0
    assert METRICS.get("accuracy").fn is em


def test_token_f1_squad_style():
    f1 = METRICS.get("token_f1").fn
    assert f1("The Eiffel Tower!", "eiffel tower") == 1.0
    assert math.isclose(f1("paris france", "paris"), 2 / 3)
    assert f1("", "") == 1.0 and f1("x", "") == 0.0


def test_exact_match_of_canonical_json():
    em = METRICS.get("exact_match").fn
    assert em('{"b": "X", "a": 1}', '{"a":1,"b":"x"}') == 1.0
    assert em('{"a": 1}', '{"a": 1, "b": 2}') == 0.0 and em("not json", '{"a": 1}') == 0.0


def test_json_metrics():
    valid, field_f1 = METRICS.get("json_valid").fn, METRICS.get("json_field_f1").fn
    assert valid(" {\"a\": 1} ", "{}") == 1.0 and valid("[1]", "{}") == 0.0 and valid("{a: 1}", "{}") == 0.0
    assert field_f1('{"city": "Boston", "zip": "02110"}', '{"zip": "02110", "city": "boston"}') == 1.0
    assert math.isclose(field_f1('{"city": "Boston"}', '{"city": "Boston", "zip": "1"}'), 2 / 3)
    assert field_f1("not json", '{"a": 1}') == 0.0
    assert field_f1("{}", "{}") == 1.0


def test_unknown_metric_suggests():
    with pytest.raises(LadderError, match="did you mean 'accuracy'"):
        METRICS.get("acuracy")


def test_wilson_known_values():
    low, high = wilson(8, 10)
    assert math.isclose(low, 0.4901624, rel_tol=1e-5) and math.isclose(high, 0.9433178, rel_tol=1e-5)
    assert wilson(0, 10)[0] == pytest.approx(0.0) and wilson(10, 10)[1] == pytest.approx(1.0)


def test_estimate_binary_and_bootstrap():
    e = estimate([1, 0, 1, 1], binary=True)
    assert (e.mean, e.n, e.method) == (0.75, 4, "wilson")
    b1 = estimate([0.1, 0.5, 0.9, 0.4], binary=False, seed=3)
    b2 = estimate([0.1, 0.5, 0.9, 0.4], binary=False, seed=3)
    assert b1 == b2 and b1.low <= b1.mean <= b1.high and b1.method == "bootstrap"


def test_mcnemar_and_paired():
    assert mcnemar_exact(0, 0) == 1.0
    assert math.isclose(mcnemar_exact(10, 0), 2 / 2**10)
    a = [0] * 20 + [1] * 20
    b = [1] * 20 + [1] * 20
    cmp = paired(a, b, binary=True)
    assert (cmp.wins, cmp.losses, cmp.method) == (20, 0, "mcnemar")
    assert cmp.delta == 0.5 and cmp.p_value < 1e-5 and cmp.low > 0
    with pytest.raises(ValueError):
        paired([1], [1, 0], binary=True)


def test_json_object_end():
    from ladder.backends.base import json_object_end

    assert json_object_end('{"a": 1} and more') == 8
    assert json_object_end('x {"a": {"b": "}"}} y') == 19  # nested, brace inside a string
    assert json_object_end('{"a": "q\\"}"} z') == 13  # escaped quote inside a string
    assert json_object_end('{"a": 1') == -1 and json_object_end("no json") == -1
