from __future__ import annotations

import math

import pytest

from ladder.errors import LadderError
from ladder.metrics import METRICS
from ladder.scoring.stats import estimate, mcnemar_exact, paired, wilson


@pytest.mark.parametrize("name", [n for n in METRICS.names() if n != "judge"])  # a judge model grades judge
def test_every_metric_scores_in_unit_interval(name):
    metric = METRICS.get(name)
    for pred, gold in [("a", "a"), ("", "x"), ('{"a": 1}', '{"a": 1}'), ("b c", "c d"), ("{", "{}"), ("12", "12.0")]:
        value = metric.score(pred, (gold,))
        assert 0.0 <= value <= 1.0
    # an output identical to its target scores 1, for every metric, on a target of the metric's own kind
    same = {"json_valid": '{"a": [1, "x"]}', "json_field_f1": '{"a": [1, "x"]}', "numeric_match": "$1,234.5"}.get(
        name, "same"
    )
    assert metric.score(same, (same,)) == 1.0


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
    assert valid(' {"a": 1} ', "{}") == 1.0 and valid("[1]", "{}") == 0.0 and valid("{a: 1}", "{}") == 0.0
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


def test_json_value_end():
    from ladder.backends.base import json_value_end as json_object_end

    assert json_object_end('{"a": 1} and more') == 8
    assert json_object_end('x {"a": {"b": "}"}} y') == 19  # nested, brace inside a string
    assert json_object_end('{"a": "q\\"}"} z') == 13  # escaped quote inside a string
    assert json_object_end('{"a": 1') == -1 and json_object_end("no json") == -1
    # a top-level array of objects ends at its closing bracket, not at the first object's brace
    text = '[{"value": 1, "unit": "metre"}, {"value": 2, "unit": "]"}] trailing'
    assert json_object_end(text) == len(text) - len(" trailing")
    assert json_object_end('[{"value": 1, "unit": "metre"}') == -1 and json_object_end("[1, [2, 3]]") == 11


def test_mcnemar_on_a_hand_computed_table():
    """Discordant pairs 12 (b right, a wrong) and 3 (a right, b wrong): P(X <= 3 | n=15, 1/2) =
    (1 + 15 + 105 + 455) / 32768 = 576 / 32768; two-sided p = 1152 / 32768 = 0.03515625."""
    assert mcnemar_exact(12, 3) == pytest.approx(1152 / 32768, rel=1e-12)
    assert mcnemar_exact(3, 12) == mcnemar_exact(12, 3)
    a = [1] * 40 + [0] * 12 + [1] * 3 + [0] * 45
    b = [1] * 40 + [1] * 12 + [0] * 3 + [0] * 45
    cmp = paired(a, b, binary=True)
    assert (cmp.wins, cmp.losses, cmp.delta) == (12, 3, pytest.approx(0.09)) and cmp.p_value == pytest.approx(
        0.03515625
    )


def test_holm_on_known_p_values():
    """p = (0.01, 0.04, 0.03, 0.005), m = 4: sorted 0.005*4=0.02, 0.01*3=0.03, 0.03*2=0.06, 0.04*1 -> max(0.06, 0.04)."""
    from ladder.scoring.stats import holm

    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.5]) == [0.5] and holm([0.6, 0.9]) == pytest.approx([1.0, 1.0]) and holm([]) == []


def test_paired_bootstrap_interval_covers_a_known_difference_about_95_percent():
    """300 synthetic paired samples (n=80, true difference 0.05, correlated per-example difficulty):
    the 95% paired-bootstrap interval should contain 0.05 about 95% of the time (seen: 0.94-0.96)."""
    import numpy as np

    rng = np.random.default_rng(7)
    hits, trials = 0, 300
    for t in range(trials):
        difficulty = rng.uniform(0, 1, 80)
        a = np.clip(difficulty + rng.normal(0, 0.2, 80), 0, None)
        b = a + 0.05 + rng.normal(0, 0.15, 80)
        cmp = paired(a.tolist(), b.tolist(), binary=False, seed=t)
        hits += cmp.low <= 0.05 <= cmp.high
    assert 0.90 <= hits / trials <= 0.99


def test_power_and_n_needed_match_the_normal_formula():
    from ladder.scoring.stats import n_to_detect, power_at

    # (1.95996 + 0.84162)^2 * 0.5^2 / 0.1^2 = 196.2 -> 197
    assert n_to_detect(0.1, 0.5) == 197 and n_to_detect(-0.1, 0.5) == 197 and n_to_detect(0.0, 0.5) is None
    assert power_at(0.1, 197, 0.5) == pytest.approx(0.8, abs=0.005)


# -- every interval holds its estimate (a 0/150 rung once got a Wilson low bound 1.7e-18 above its mean 0.0,
# and the HTML plot's error bars went negative) ----------------------------------------------------------
def test_wilson_holds_its_estimate_for_every_k_and_n_up_to_500():
    for n in range(1, 501):
        for k in range(n + 1):
            low, high = wilson(k, n)
            assert 0.0 <= low <= k / n <= high <= 1.0, (k, n, low, high)


def test_zero_of_150_has_a_low_bound_of_exactly_zero():
    e = estimate([0.0] * 150, binary=True)
    assert e.mean == 0.0 and e.low == 0.0 and 0.02 < e.high < 0.03


from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_scores = st.lists(st.floats(min_value=0, max_value=1, allow_nan=False), min_size=1, max_size=40)


@settings(max_examples=300, deadline=None)
@given(_scores, st.integers(0, 10))
def test_bootstrap_interval_holds_its_estimate(scores, seed):
    e = estimate(scores, binary=False, seed=seed)
    assert e.low <= e.mean <= e.high


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.tuples(st.sampled_from([0.0, 1.0, 0.25]), st.sampled_from([0.0, 1.0, 0.5])), min_size=1, max_size=40),
    st.integers(0, 10),
)
def test_paired_interval_holds_its_difference(pairs, seed):
    a, b = [x for x, _ in pairs], [y for _, y in pairs]
    cmp = paired(a, b, binary=False, seed=seed)
    assert cmp.low <= cmp.delta <= cmp.high
