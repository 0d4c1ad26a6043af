"""Initializers: reproducible draws, the literature's formulas, argument checks.

Most tests run over every name in the registry, so a new initializer is
checked as soon as it is registered; `FORMULAS` must then get its formula.
"""
import math

import numpy as np
import pytest

from graphc.errors import GraphcError
from graphc.train import init

NAMES = sorted(init.REGISTRY)
FI, FO = 400, 600  # fans of the (400, 600) weight used for the statistics

# std (and bounds for uniform ones) of each registered name at fans (400, 600),
# written out from the papers rather than taken from the code under test.
U_HE, U_GLOROT, U_LECUN = math.sqrt(6 / FI), math.sqrt(6 / (FI + FO)), 1 / math.sqrt(FI)
FORMULAS = {
    "zeros": (0.0, (0.0, 0.0)),
    "ones": (0.0, (1.0, 1.0)),
    "normal": (0.01, None),
    "uniform": (U_LECUN / math.sqrt(3), (-U_LECUN, U_LECUN)),
    "xavier_normal": (math.sqrt(2 / (FI + FO)), None),
    "xavier_uniform": (U_GLOROT / math.sqrt(3), (-U_GLOROT, U_GLOROT)),
    "lecun_normal": (math.sqrt(1 / FI), None),
    "he_normal": (math.sqrt(2 / FI), None),
    "he_uniform": (U_HE / math.sqrt(3), (-U_HE, U_HE)),
    "orthogonal": (1 / math.sqrt(max(FI, FO)), (-1.0, 1.0)),
}
ALIASES = {"glorot_normal": "xavier_normal", "glorot_uniform": "xavier_uniform", "he": "he_normal",
           "kaiming": "he_normal", "kaiming_normal": "he_normal", "kaiming_uniform": "he_uniform"}


def draw(name, shape, seed=0, pname="dense_1.W"):
    return init.get(name)(shape, init.param_rng(seed, pname))


def is_random(name):
    return init.get(name).moments((FI, FO), FI, FO).std > 0


def test_registry_has_the_documented_names():
    assert set(FORMULAS) | set(ALIASES) <= set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_declared_moments_match_the_literature(name):
    std, bounds = FORMULAS[ALIASES.get(name, name)]  # KeyError: add the new initializer's formula
    m = init.get(name).moments((FI, FO), FI, FO)
    assert m.std == pytest.approx(std, rel=1e-12)
    if bounds is not None:
        assert (m.low, m.high) == pytest.approx(bounds, rel=1e-12)


@pytest.mark.parametrize("name", NAMES)
def test_same_seed_and_name_give_the_same_array(name):
    a, b = draw(name, (30, 20)), draw(name, (30, 20))
    assert np.array_equal(a, b)
    if is_random(name):
        assert not np.array_equal(a, draw(name, (30, 20), seed=1))
        assert not np.array_equal(a, draw(name, (30, 20), pname="dense_2.W"))


@pytest.mark.parametrize("name", NAMES)
def test_draw_does_not_depend_on_creation_order(name):
    first = [draw(name, (5, 4), pname=p) for p in ("a.W", "b.W", "c.W")]
    second = [draw(name, (5, 4), pname=p) for p in ("c.W", "a.W", "b.W")]
    assert all(np.array_equal(x, y) for x, y in zip(first, [second[1], second[2], second[0]]))


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("shape", [(3, 4), (5, 2), (1, 1), (2, 3, 4), (7,), (), (0, 3)])
def test_shape_and_dtype(name, shape):
    ini = init.get(name)
    if len(shape) < ini.min_ndim:
        with pytest.raises(GraphcError, match="at least 2 dimensions"):
            ini(shape, init.param_rng(0, "w"))
        return
    w = ini(shape, init.param_rng(0, "w"))
    assert w.shape == shape and w.dtype == np.float64 and np.all(np.isfinite(w))


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("shape", [(FI, FO), (FO, FI)])
def test_statistics_match_the_formula(name, shape):
    """n = 240,000 entries.  The sample std's relative standard error is
    1/sqrt(2n) = 0.14% for a Gaussian (less for a uniform), so a 2% tolerance is
    over 10 standard errors, yet far below the factor sqrt(2) or sqrt(3) a wrong
    formula would give.  The sample mean's standard error is std/sqrt(n) =
    0.2% of std; we allow 1% of std.  (Orthogonal entries are not independent,
    but their variance is exact by construction.)"""
    ini = init.get(name)
    fan_in, fan_out = init.fans(shape)
    m = ini.moments(shape, fan_in, fan_out)
    w = ini(shape, init.param_rng(123, "big.W"))
    assert w.min() >= m.low and w.max() <= m.high
    if m.std == 0:
        assert np.all(w == m.mean)
        return
    assert abs(w.mean() - m.mean) < 0.01 * m.std
    assert w.std() == pytest.approx(m.std, rel=0.02)
    if getattr(ini, "uniform", False):  # a uniform fills its interval: the extremes lie near the bounds
        assert w.min() < m.low + 0.01 * (m.high - m.low) and w.max() > m.high - 0.01 * (m.high - m.low)


def test_fans():
    assert init.fans((3, 5)) == (3, 5)  # Dense: x @ W, W is (in, out)
    assert init.fans((7,)) == (7, 7)
    assert init.fans(()) == (1, 1)
    assert init.fans((3, 4, 5)) == (12, 15)  # receptive field 3 times (in, out)


def test_explicit_fans_override_the_shape():
    w = init.HeNormal()((2000, 10), init.param_rng(0, "w"), fan_in=4, fan_out=10)
    assert w.std() == pytest.approx(math.sqrt(2 / 4), rel=0.03)


def test_zeros_and_constants_are_exact():
    rng = init.param_rng(0, "b")
    assert np.array_equal(init.Zeros()((3, 4), rng), np.zeros((3, 4)))
    assert np.array_equal(init.get("ones")((2,), rng), np.ones(2))
    assert np.array_equal(init.Constant(0.1)((1, 5), rng), np.full((1, 5), 0.1))


def test_normal_and_uniform_arguments():
    w = init.Normal(std=0.5, mean=2.0)((FI, FO), init.param_rng(0, "w"))
    assert w.mean() == pytest.approx(2.0, abs=0.01) and w.std() == pytest.approx(0.5, rel=0.02)
    w = init.Uniform(0.2)((100, 100), init.param_rng(0, "w"))
    assert w.min() >= -0.2 and w.max() <= 0.2 and w.max() > 0.19
    w = init.Uniform((1.0, 3.0))((100, 100), init.param_rng(0, "w"))
    assert w.min() >= 1.0 and w.max() <= 3.0 and w.mean() == pytest.approx(2.0, abs=0.02)


@pytest.mark.parametrize("shape", [(60, 20), (20, 60), (7, 7), (4, 5, 6)])
@pytest.mark.parametrize("gain", [1.0, 2.5])
def test_orthogonal(shape, gain):
    w = init.Orthogonal(gain)(shape, init.param_rng(0, "w"))
    flat = w.reshape(-1, shape[-1])
    gram = flat.T @ flat if flat.shape[0] >= flat.shape[1] else flat @ flat.T
    np.testing.assert_allclose(gram, gain ** 2 * np.eye(len(gram)), atol=1e-12)


def test_orthogonal_sign_fix_makes_it_uniform():
    """Without the sign fix LAPACK's Q[0, 0] = -|g_00| / |g_:0| is never positive;
    a Haar-distributed Q has E[Q[0, 0]] = 0 and std 1/sqrt(3) for 3x3, so
    over 2000 draws the mean is within 0.05 (4 standard errors)."""
    rng = init.param_rng(0, "w")
    corner = [init.Orthogonal()((3, 3), rng)[0, 0] for _ in range(2000)]
    assert abs(np.mean(corner)) < 0.05


def test_get_resolves_names_classes_and_instances():
    assert isinstance(init.get("he"), init.HeNormal)
    assert isinstance(init.get("Glorot-Uniform"), init.XavierUniform)
    assert isinstance(init.get(init.Orthogonal), init.Orthogonal)
    ini = init.Normal(0.1)
    assert init.get(ini) is ini
    assert repr(ini) == "Normal(std=0.1, mean=0.0)" and repr(init.Zeros()) == "Zeros()"


def test_unknown_name_lists_the_known_ones():
    with pytest.raises(GraphcError, match="unknown initializer 'glorot'.*he_normal.*xavier_uniform"):
        init.get("glorot")
    with pytest.raises(GraphcError, match="expected an initializer"):
        init.get(3)


@pytest.mark.parametrize("make, match", [
    (lambda: init.Normal(std=0), "std=0.0 must be positive"),
    (lambda: init.Normal(std=-1), "must be positive"),
    (lambda: init.Normal(std=float("nan")), "finite"),
    (lambda: init.Normal(std=True), "finite"),
    (lambda: init.Normal(mean="0"), "finite"),
    (lambda: init.Uniform(0), "must be positive"),
    (lambda: init.Uniform((1.0, 0.0)), "low < high"),
    (lambda: init.Uniform((1, 2, 3)), "limit"),
    (lambda: init.Constant(float("inf")), "finite"),
    (lambda: init.Orthogonal(gain=0), "gain"),
])
def test_bad_arguments(make, match):
    with pytest.raises(GraphcError, match=match):
        make()


@pytest.mark.parametrize("call, match", [
    (lambda: init.HeNormal()((-1, 3), init.param_rng(0, "w")), "non-negative integers"),
    (lambda: init.HeNormal()("ab", init.param_rng(0, "w")), "non-negative integers"),
    (lambda: init.HeNormal()((2.0, 3), init.param_rng(0, "w")), "non-negative integers"),
    (lambda: init.HeNormal()((2, 3), 0), "numpy Generator"),
    (lambda: init.HeNormal()((2, 3), init.param_rng(0, "w"), fan_in=0), "fan_in must be a positive"),
    (lambda: init.param_rng(-1, "w"), "non-negative integer"),
    (lambda: init.param_rng(1.5, "w"), "non-negative integer"),
    (lambda: init.param_rng(0, 3), "must be a string"),
])
def test_bad_calls(call, match):
    with pytest.raises(GraphcError, match=match):
        call()
