import numpy as np
import pytest

from recur import tasks


def test_mackey_glass_reproducible_and_seeded():
    a = tasks.mackey_glass(500, rng=3)
    assert a.shape == (500, 1)
    np.testing.assert_array_equal(a, tasks.mackey_glass(500, rng=np.random.default_rng(3)))
    assert not np.allclose(a, tasks.mackey_glass(500, rng=4))


def test_mackey_glass_statistics_match_reservoirpy():
    # Same equation, independent integrator: the attractor's statistics agree.
    from reservoirpy.datasets import mackey_glass as rpy_mg

    ours = np.concatenate([tasks.mackey_glass(3000, rng=s)[:, 0] for s in range(3)])
    ref = np.ravel(rpy_mg(9000, tau=17, seed=0))[1000:]
    assert abs(ours.mean() - ref.mean()) < 0.03
    assert abs(ours.std() - ref.std()) < 0.03
    assert 0.2 < ours.min() and ours.max() < 1.45


def test_mackey_glass_converges_in_dt():
    # Halving the step barely changes a short trajectory from the same history.
    coarse = tasks.mackey_glass(50, dt=0.1, discard=0.0, rng=0)
    fine = tasks.mackey_glass(50, dt=0.05, discard=0.0, rng=0)
    assert np.abs(coarse - fine).max() < 0.02


def test_mackey_glass_bad_steps():
    with pytest.raises(ValueError, match="whole numbers"):
        tasks.mackey_glass(10, dt=0.3)
    with pytest.raises(TypeError, match="n_steps"):
        tasks.mackey_glass(10.5)


def test_lorenz_attractor():
    x = tasks.lorenz(5000, rng=1)
    assert x.shape == (5000, 3)
    assert 20 < x[:, 2].mean() < 27  # the attractor's mean height is about 23.5
    assert np.abs(x[:, 0]).max() < 25
    assert not np.allclose(x, tasks.lorenz(5000, rng=2))


def test_narma_follows_its_recurrence():
    u, y = tasks.narma(300, rng=0)
    assert u.shape == y.shape == (300, 1)
    u, y = u[:, 0], y[:, 0]
    assert 0 <= u.min() and u.max() <= 0.5
    for t in range(20, 300):
        expect = (0.3 * y[t - 1] + 0.05 * y[t - 1] * y[t - 10:t].sum()
                  + 1.5 * u[t - 9] * u[t] + 0.1)
        assert y[t] == pytest.approx(expect, rel=1e-12)


def test_sine_sum_spectrum():
    x = tasks.sine_sum(4096, frequencies=(0.2, 0.5), rng=0)[:, 0]
    assert np.abs(x).max() <= 1.0
    spec = np.abs(np.fft.rfft(x))
    omega = 2 * np.pi * np.fft.rfftfreq(4096)
    peaks = np.sort(omega[np.argsort(spec)[-2:]])
    np.testing.assert_allclose(peaks, [0.2, 0.5], atol=2 * np.pi / 4096)
    with pytest.raises(ValueError, match="amplitudes"):
        tasks.sine_sum(10, frequencies=(0.1, 0.2), amplitudes=(1.0,))


def test_next_step():
    x = np.arange(10.0)
    u, y = tasks.next_step(x, horizon=2)
    assert u.shape == y.shape == (8, 1)
    np.testing.assert_array_equal(y[:, 0], u[:, 0] + 2)
    with pytest.raises(ValueError, match="horizon"):
        tasks.next_step(x, horizon=10)
    with pytest.raises(ValueError, match="NaN"):
        tasks.next_step(np.array([1.0, np.nan, 2.0]))


def test_normalisation_helpers():
    x = np.random.default_rng(0).normal(3.0, 2.0, size=(500, 2))
    z, mean, std = tasks.standardize(x)
    np.testing.assert_allclose(z.mean(0), 0, atol=1e-12)
    np.testing.assert_allclose(z.std(0), 1)
    z2, _, _ = tasks.standardize(x[:10], mean, std)
    np.testing.assert_allclose(z2, z[:10])
    r = tasks.rescale(x, -1, 1)
    np.testing.assert_allclose([r.min(), r.max()], [-1, 1])
    s = tasks.squash(x[:, :1] / 10)
    np.testing.assert_allclose(tasks.unsquash(s), x[:, :1] / 10)
    with pytest.raises(ValueError, match="constant"):
        tasks.standardize(np.ones((5, 1)))


def test_windows():
    x = np.arange(20.0)
    w = tasks.windows(x, 5)
    assert w.shape == (4, 5, 1) and w[1, 0, 0] == 5
    assert tasks.windows(x, 5, stride=3).shape == (6, 5, 1)
    for bad in (0, -1):
        with pytest.raises(ValueError, match="stride"):
            tasks.windows(x, 5, stride=bad)
    with pytest.raises(TypeError, match="stride"):
        tasks.windows(x, 5, stride=2.5)
    r = tasks.windows(x, 5, n_windows=7, rng=0)
    assert r.shape == (7, 5, 1) and np.all(np.diff(r[:, :, 0], axis=1) == 1)
