import numpy as np
import pytest

import recur as rc

READOUTS = [
    (rc.Ridge, {"alpha": 1e-3, "fit_intercept": True}),
    (rc.Force, {"alpha": 0.5, "fit_intercept": True}),
    (rc.Lms, {"learning_rate": 0.01, "fit_intercept": True}),
    (rc.ExploratoryHebbian, {"learning_rate": 0.01, "noise": 0.5, "tau": 5.0, "decay": None,
                             "fit_intercept": True, "rng": 0}),
]
# Readouts that converge to the least-squares map; the exploratory Hebbian readout follows a
# reward signal and is tested on its own task (tests/test_hebbian.py).
SUPERVISED = (rc.Ridge, rc.Force, rc.Lms)


def _linear_data(seed, T=400, N=6, M=2, noise=0.0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(T, N))
    coef = rng.normal(size=(M, N))
    b = rng.normal(size=M)
    return X, X @ coef.T + b + noise * rng.normal(size=(T, M)), coef, b


@pytest.mark.parametrize("cls,kw", READOUTS, ids=lambda v: getattr(v, "__name__", ""))
class TestReadoutContract:
    def test_hyperparameters_stored_verbatim(self, cls, kw):
        r = cls(**kw)
        assert r.get_params() == kw
        assert not any(name.endswith("_") for name in vars(r))
        assert repr(r).startswith(cls.__name__ + "(")

    def test_predict_before_fit(self, cls, kw):
        with pytest.raises(rc.NotFittedError, match="not fitted"):
            cls(**kw).predict(np.zeros((3, 4)))

    def test_shapes_and_no_mutation(self, cls, kw):
        X, Y, _, _ = _linear_data(0)
        X0, Y0 = X.copy(), Y.copy()
        r = cls(**kw).fit(X, Y)
        np.testing.assert_array_equal(X, X0)
        np.testing.assert_array_equal(Y, Y0)
        assert r.coef_.shape == (2, 6) and r.intercept_.shape == (2,)
        assert r.n_features_in_ == 6
        assert r.predict(X).shape == (400, 2)
        assert r.predict(X[0]).shape == (2,)
        assert r.predict(X.reshape(4, 100, 6)).shape == (4, 100, 2)
        one = cls(**kw).fit(X[:, :1], Y[:, 0])  # a 1-D target is one output
        assert one.coef_.shape == (1, 1)

    def test_deterministic_and_fit_resets(self, cls, kw):
        X, Y, _, _ = _linear_data(1)
        a = cls(**kw).fit(X, Y)
        b = cls(**kw).fit(X[:50] * 3, Y[:50]).fit(X, Y)
        np.testing.assert_allclose(a.coef_, b.coef_, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(a.intercept_, b.intercept_, rtol=1e-12, atol=1e-12)

    def test_partial_fit_in_chunks_equals_fit(self, cls, kw):
        X, Y, _, _ = _linear_data(2)
        whole = cls(**kw).fit(X, Y)
        chunked = cls(**kw)
        for start in range(0, 400, 130):
            chunked.partial_fit(X[start:start + 130], Y[start:start + 130])
        np.testing.assert_allclose(chunked.coef_, whole.coef_, rtol=1e-9, atol=1e-10)
        assert chunked.n_samples_seen_ == 400

    def test_learns_a_linear_map(self, cls, kw):
        # Several seeds: each readout recovers a noiseless linear map.
        if cls not in SUPERVISED:
            pytest.skip("learns from a reward, not a target map")
        for seed in range(3):
            X, Y, coef, b = _linear_data(seed, T=3000)
            r = cls(**kw).fit(X, Y)
            assert np.abs(r.coef_ - coef).max() < 0.05
            assert np.abs(r.intercept_ - b).max() < 0.05

    def test_bad_input(self, cls, kw):
        r = cls(**kw)
        with pytest.raises(ValueError, match="leading shape"):
            r.fit(np.zeros((10, 3)), np.zeros((9, 1)))
        with pytest.raises(ValueError, match="NaN"):
            r.fit(np.full((10, 3), np.nan), np.zeros((10, 1)))
        r.fit(np.ones((10, 3)) + np.arange(10)[:, None], np.arange(10.0))
        with pytest.raises(ValueError, match="features"):
            r.predict(np.zeros((5, 4)))


def test_ridge_equals_lstsq():
    X, Y, _, _ = _linear_data(3, noise=0.3)
    alpha = 2.5
    r = rc.Ridge(alpha=alpha).fit(X, Y)
    # Unpenalised intercept: centre, then solve the augmented least-squares problem.
    Xc, Yc = X - X.mean(0), Y - Y.mean(0)
    A = np.vstack([Xc, np.sqrt(alpha) * np.eye(6)])
    B = np.vstack([Yc, np.zeros((6, 2))])
    coef = np.linalg.lstsq(A, B, rcond=None)[0]
    np.testing.assert_allclose(r.coef_, coef.T, rtol=1e-10)
    np.testing.assert_allclose(r.intercept_, Y.mean(0) - X.mean(0) @ coef, rtol=1e-10)
    plain = rc.Ridge(alpha=0.0, fit_intercept=False).fit(X, Y)
    np.testing.assert_allclose(plain.coef_.T, np.linalg.lstsq(X, Y, rcond=None)[0], rtol=1e-10)


def test_ridge_equals_reservoirpy():
    from reservoirpy.nodes import Ridge as RpyRidge

    X, Y, _, _ = _linear_data(4, noise=0.3)
    ref = RpyRidge(ridge=0.7).fit(X, Y)
    r = rc.Ridge(alpha=0.7).fit(X, Y)
    np.testing.assert_allclose(r.coef_, ref.Wout.T, rtol=1e-10)
    np.testing.assert_allclose(r.intercept_, np.ravel(ref.bias), rtol=1e-10)


def test_ridge_batch_of_sequences_equals_concatenation():
    X, Y, _, _ = _linear_data(5, noise=0.1)
    a = rc.Ridge(alpha=0.1).fit(X.reshape(4, 100, 6), Y.reshape(4, 100, 2))
    b = rc.Ridge(alpha=0.1).fit(X, Y)
    np.testing.assert_allclose(a.coef_, b.coef_, rtol=1e-12)


def test_ridge_float32_features_match_float64():
    X, Y, _, _ = _linear_data(6, T=10_000, noise=0.1)
    a = rc.Ridge(alpha=1e-3).fit(X.astype(np.float32), Y)
    b = rc.Ridge(alpha=1e-3).fit(X.astype(np.float32).astype(np.float64), Y)
    np.testing.assert_allclose(a.coef_, b.coef_, rtol=1e-9)


def test_force_one_pass_equals_ridge_without_intercept():
    # RLS started from P = I / alpha solves the ridge problem with penalty alpha exactly.
    X, Y, _, _ = _linear_data(7, noise=0.5)
    f = rc.Force(alpha=3.0).fit(X, Y)
    r = rc.Ridge(alpha=3.0, fit_intercept=False).fit(X, Y)
    np.testing.assert_allclose(f.coef_, r.coef_, rtol=1e-8, atol=1e-10)


def test_lms_diverges_loudly():
    X, Y, _, _ = _linear_data(8)
    with pytest.raises(rc.DivergenceError, match="learning_rate"):
        rc.Lms(learning_rate=5.0).fit(X * 10, Y)


def test_bad_hyperparameters_fail_at_fit():
    X, Y, _, _ = _linear_data(9)
    with pytest.raises(ValueError, match="alpha"):
        rc.Ridge(alpha=-1.0).fit(X, Y)
    with pytest.raises(ValueError, match="alpha"):
        rc.Force(alpha=0.0).fit(X, Y)
    with pytest.raises(ValueError, match="learning_rate"):
        rc.Lms(learning_rate=0.0).fit(X, Y)
