import numpy as np

from edgetwin.virtual.sensor import CgmSensor, cubic_spline_not_a_knot


def test_same_seed_same_noise_other_seed_other_noise() -> None:
    a = [CgmSensor("Dexcom", seed=3).noise_at_sample(k) for k in range(200)]
    b = [CgmSensor("Dexcom", seed=3).noise_at_sample(k) for k in range(200)]
    c = [CgmSensor("Dexcom", seed=4).noise_at_sample(k) for k in range(200)]
    assert a == b
    assert a != c


def test_noise_statistics_follow_the_johnson_su_model() -> None:
    # Stationary latent variance for e_j = 0.7 (e_{j-1} + N(0,1)) is 0.49 / (1 - 0.49) ~ 0.96,
    # so the noise is Johnson SU of a ~unit normal: mean ~ xi + lambda sinh(-gamma/delta) ...
    s = CgmSensor("GuardianRT", seed=1)
    noise = np.array([s.noise_at_sample(k) for k in range(60_000)])
    rng = np.random.default_rng(0)
    e = rng.normal(0.0, np.sqrt(0.49 / 0.51), 1_000_000)
    jsu = -5.47 + 15.9574 * np.sinh((e + 0.5444) / 1.6898)
    assert abs(noise.mean() - jsu.mean()) < 1.0
    assert abs(noise.std() - jsu.std()) / jsu.std() < 0.1
    # Autocorrelation: strong at 5 min, weak after many hours.
    lag1 = np.corrcoef(noise[:-1], noise[1:])[0, 1]
    lag_far = np.corrcoef(noise[:-200], noise[200:])[0, 1]
    assert lag1 > 0.9
    assert abs(lag_far) < 0.1


def test_samples_only_on_its_period_and_clips_to_range() -> None:
    s = CgmSensor("GuardianRT", seed=0)
    assert s.measure(3, 120.0) is None
    assert s.measure(5, 120.0) is not None
    assert s.measure(10, 1000.0) == 600.0
    assert s.measure(15, 0.0) == 39.0
    trace = s.trace(np.full(31, 100.0))
    assert np.isfinite(trace[::5]).all() and np.isnan(trace[1::5]).all()


def test_spline_interpolates_the_knots_and_a_cubic_exactly() -> None:
    x = np.arange(11.0) * 15.0
    y = 0.001 * x**3 - 0.2 * x**2 + x
    xn = np.linspace(0, 150, 77)
    np.testing.assert_allclose(cubic_spline_not_a_knot(x, y, xn), 0.001 * xn**3 - 0.2 * xn**2 + xn, atol=1e-9)
