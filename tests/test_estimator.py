"""SpikingClassifier: scikit-learn's estimator checks, pipelines, parameters, persistence, bad input."""

import warnings

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV, StratifiedKFold, cross_val_score, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from spikecvx import SpikingClassifier
from spikecvx.experiments.cells import _train
from spikecvx.tasks import first_last_xor
from spikecvx.train import METHODS, Head

SMALL = dict(width=10, last_width=20, n_regs=2, epochs=5, lrs=(1e-2,))


@parametrize_with_checks([SpikingClassifier(**SMALL), SpikingClassifier(**SMALL, loss="softmax")])
def test_sklearn_estimator_checks(estimator, check):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        check(estimator)


def _xor(n=400, seed=0):
    X, y = first_last_xor(n, 5, seed=seed)
    return X, np.where(y > 0, "odd", "even")


@pytest.mark.parametrize("method", list(METHODS))
def test_every_method_learns_xor(method):
    """Every method solves first-last XOR (T=5) on held-out data: chance is 0.5."""
    X, y = _xor()
    Xt, yt = _xor(400, seed=9)
    clf = SpikingClassifier(method=method, width=40, last_width=200, epochs=60, lrs=(1e-2,), n_regs=4,
                            search_rounds=2, search_candidates=64)
    clf.fit(X, y)
    assert set(clf.predict(Xt)) <= {"odd", "even"}
    assert clf.score(Xt, yt) >= 0.95
    assert not hasattr(clf, "predict_proba")  # the default binary loss (hinge) is not probabilistic
    if METHODS[method].certified:
        cert = clf.certificate_
        assert cert["rel_gap"] <= 1e-6 and cert["distinct_columns"] <= cert["dictionary_neurons"]
        assert cert == dict(clf.report_.heads["y"].certificate.to_dict(),
                            dictionary_rows=clf.report_.dictionary.rows,
                            dictionary_neurons=clf.report_.dictionary.neurons,
                            distinct_columns=clf.report_.dictionary.distinct,
                            neurons_kept=clf.report_.neurons_kept)
    else:  # the readout was changed by SG: no certificate describes it
        assert clf.certificate_ is None
    assert clf.report_.method == method


def test_predict_proba_only_for_probabilistic_losses():
    X, y = _xor(200)
    assert not hasattr(SpikingClassifier(), "predict_proba")
    assert not hasattr(SpikingClassifier(loss="hinge"), "predict_proba")
    clf = SpikingClassifier(loss="logistic", **SMALL)
    assert hasattr(clf, "predict_proba")
    clf.fit(X, y)
    p = clf.predict_proba(X)
    np.testing.assert_allclose(p[:, 1], 1 / (1 + np.exp(-clf.decision_function(X))))
    np.testing.assert_allclose(p.sum(axis=1), 1.0)
    # three classes: softmax by default, probabilities available and consistent with predict
    y3 = np.arange(len(X)) % 3
    clf3 = SpikingClassifier(**SMALL).fit(X.reshape(len(X), -1), y3)
    assert clf3.head_.loss == "softmax" and hasattr(clf3, "predict_proba")
    p3 = clf3.predict_proba(X.reshape(len(X), -1))
    np.testing.assert_array_equal(clf3.classes_[p3.argmax(axis=1)], clf3.predict(X.reshape(len(X), -1)))
    clf_hinge = SpikingClassifier(**SMALL).fit(X, y)
    assert clf_hinge.head_.loss == "hinge" and not hasattr(clf_hinge, "predict_proba")


def test_grid_search_scores_are_the_hand_computed_ones():
    """GridSearchCV's scores equal cross-validation by hand, its choice is their argmax, and its
    refitted model equals a pipeline fitted by hand with the chosen parameters."""
    X, y = _xor()
    X2 = X.reshape(len(X), -1)  # 2-D input cut back into 5 steps
    clf = SpikingClassifier(time_steps=5, width=20, last_width=100, n_regs=3)
    pipe = make_pipeline(StandardScaler(), clf)
    betas = [0.0, 0.9]
    cv = StratifiedKFold(2)
    gs = GridSearchCV(pipe, {"spikingclassifier__beta": betas}, cv=cv).fit(X2, y)
    by_hand = [cross_val_score(clone(pipe).set_params(spikingclassifier__beta=b), X2, y, cv=cv).mean()
               for b in betas]
    np.testing.assert_array_equal(gs.cv_results_["mean_test_score"], by_hand)
    assert gs.best_params_["spikingclassifier__beta"] == betas[int(np.argmax(by_hand))]
    refit = clone(pipe).set_params(**gs.best_params_).fit(X2, y)
    np.testing.assert_array_equal(gs.predict(X2), refit.predict(X2))
    assert gs.score(X2, y) == refit.score(X2, y)


@pytest.mark.parametrize("method", ["cvx", "sg", "cvx-sg"])
def test_estimator_and_cells_train_through_the_registry(method):
    """The same method, seed and data give the same network from the estimator, the registry and
    the experiment cells."""
    X, y = _xor(200)
    params = dict(width=20, last_width=40, n_regs=3, epochs=4, lrs=(1e-2,), ft_lrs=(1e-3,), random_state=2)
    clf = SpikingClassifier(method=method, **params).fit(X, y)
    codes = (y == "odd").astype(int)
    target = np.where(codes == 1, 1.0, -1.0)
    tr, va = train_test_split(np.arange(len(y)), test_size=0.25, stratify=codes, random_state=2)
    Xs = torch.as_tensor(X, dtype=torch.float32)
    net_kw = dict(layers=3, branches=2, width=20, last_width=40, beta=0.99, threshold=1.0, readout="membrane",
                  readout_bias=0.0, readout_at="last")
    m = METHODS[method]
    given = dict(n_regs=3, epochs=4, lrs=(1e-2,), ft_lrs=(1e-3,))
    options = {k: v for k, v in given.items() if k in m.options}
    heads = [Head("y", 1, "hinge")]
    net, rep = m.fit(Xs[tr], target[tr], Xs[va], target[va], net_kw, heads, seed=2, **options)
    cell = dict(seed=2, **options, unrelated_key=1)
    net_c, rep_c = _train(method, Xs[tr], target[tr], Xs[va], target[va], Xs[va], target[va], Xs[tr],
                          target[tr], net_kw, heads, cell)
    for other in (net, net_c):
        assert other.config() == clf.network_.config()
        for p, q in zip(other.parameters(), clf.network_.parameters()):
            assert torch.equal(p, q)
    assert rep.method == rep_c.method == clf.report_.method == method


def test_one_set_of_defaults():
    params = SpikingClassifier().get_params()
    for name in ("n_regs", "min_ratio", "tol", "witness", "witness_scale"):
        assert params[name] == METHODS["cvx"].options[name]
    for name in ("epochs", "lrs"):
        assert params[name] == METHODS["sg"].options[name]
    assert params["ft_lrs"] == METHODS["cvx-sg"].options["ft_lrs"] == METHODS["sg-sg"].options["ft_lrs"]
    assert params["n_regs"] == 8
    with pytest.raises(TypeError):
        SpikingClassifier("cvx")  # keyword-only


BAD_PARAMS = [
    ("method", "adam"), ("method", 3), ("layers", 1), ("layers", 2.5), ("branches", 0), ("width", 0),
    ("width", 15), ("last_width", 0), ("last_width", 21), ("beta", 1.5), ("beta", "0.9"), ("threshold", 0.0),
    ("threshold", float("nan")), ("threshold", True), ("readout", "voltage"), ("readout_bias", float("nan")),
    ("readout_bias", float("inf")), ("readout_bias", "0"), ("time_steps", 0), ("loss", "adam"),
    ("penalty", "l2"), ("n_regs", 0), ("n_regs", 2.0), ("min_ratio", 0.0), ("min_ratio", 1.0),
    ("witness", "uniform"), ("witness_scale", -1.0), ("epochs", 0), ("lrs", ()), ("lrs", (-1e-3,)),
    ("lrs", "0.01"), ("lrs", (float("nan"),)), ("ft_lrs", (0.0,)), ("validation_fraction", 0.0),
    ("validation_fraction", 1.0), ("tol", 0.0), ("tol", "1e-6"), ("random_state", -1), ("random_state", "a"),
    ("verbose", "yes"), ("device", "nonsense"), ("device", 3), ("device", "cuda:99"),
]


@pytest.mark.parametrize("name, value", BAD_PARAMS)
def test_every_bad_parameter_is_named(name, value):
    X, y = _xor(40)
    clf = SpikingClassifier(**{**SMALL, name: value})
    with pytest.raises((ValueError, TypeError), match=f"'{name}'|{name}"):
        clf.fit(X, y)


def test_verbose_shows_progress(capsys):
    X, y = _xor(40)
    SpikingClassifier(**SMALL).fit(X, y)
    assert capsys.readouterr().err == ""
    SpikingClassifier(verbose=True, **SMALL).fit(X, y)
    assert "path" in capsys.readouterr().err  # the regularisation path's progress bar


def test_binary_loss_with_many_classes_and_device():
    X, y = _xor(40)
    with pytest.raises(ValueError, match="'loss'"):
        SpikingClassifier(loss="hinge", **SMALL).fit(X, np.arange(40) % 3)
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="device 'cuda'.*not available"):
            SpikingClassifier(device="cuda", **SMALL).fit(X, y)
    clf = SpikingClassifier(device="cpu", **SMALL).fit(X, y)
    assert clf.network_.device == torch.device("cpu")


def test_save_load_round_trip(tmp_path):
    X, y = _xor()
    clf = SpikingClassifier(width=20, last_width=100, n_regs=3).fit(X, y)
    clf.save(tmp_path / "clf.pt")
    back = SpikingClassifier.load(tmp_path / "clf.pt")
    np.testing.assert_array_equal(back.decision_function(X), clf.decision_function(X))
    assert back.get_params() == clf.get_params() and back.certificate_ == clf.certificate_
    assert back.report_ == clf.report_ and back.head_ == clf.head_


def test_bad_input():
    X, y = _xor()
    with pytest.raises(ValueError, match="1 class"):
        SpikingClassifier(**SMALL).fit(X, np.zeros(len(X)))
    clf = SpikingClassifier(**SMALL).fit(X, y)
    with pytest.raises(ValueError, match="expecting 5|sequence layout"):
        clf.predict(X[:, :4])
    with pytest.raises(ValueError):
        clf.predict(X[..., :1])
    bad = X.copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        SpikingClassifier(**SMALL).fit(bad, y)


# one valid value and several invalid ones per parameter; the fuzz test mixes them
_FUZZ_VALUES = {
    "method": ["cvx", "sg", "gradient", 1, None],
    "layers": [2, 3, 1, 2.0, "3"],
    "width": [8, 0, 7, -8, 8.5],
    "last_width": [16, 0, 15, "16"],
    "beta": [0.5, 0.0, 1.0, -0.1, 1.1, float("nan"), "x"],
    "threshold": [1.0, 0.0, -1.0, float("inf"), None],
    "readout_bias": [0.0, -0.5, float("nan"), float("-inf"), "b"],
    "penalty": ["l1", "group_l1", "elastic_net", "l2", 0],
    "n_regs": [2, 0, -1, 2.5, "2"],
    "min_ratio": [0.1, 0.0, 1.0, 1.5, float("nan")],
    "witness_scale": [1.0, 0.0, -2.0, float("inf")],
    "validation_fraction": [0.25, 0.0, 1.0, -0.5, "0.2"],
    "tol": [1e-6, 0.0, -1e-6, float("nan"), "1e-6"],
    "random_state": [0, 3, -1, 1.5, "seed"],
}


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_fuzz_parameters_either_fit_or_name_the_parameter(data):
    """Random parameter values (at most one invalid at a time) and random input layouts: the
    estimator either fits and predicts labels it was given, or raises ValueError / TypeError naming
    the offending parameter (or the input)."""
    params = dict(branches=2, epochs=3, lrs=(1e-2,))
    bad = data.draw(st.sampled_from([None, *_FUZZ_VALUES]), label="invalid parameter")
    for name, values in _FUZZ_VALUES.items():
        params[name] = data.draw(st.sampled_from(values[1:] if name == bad else values[:1]), label=name)
    n = data.draw(st.integers(8, 24), label="n")
    T = data.draw(st.integers(1, 4), label="T")
    dtype = data.draw(st.sampled_from([np.float32, np.float64, np.int64, np.uint8, bool]), label="dtype")
    rng = np.random.default_rng(n)
    X = (rng.random((n, T, 3)) * 3).astype(dtype)
    y = np.resize(["a", "b", "c"], n)
    clf = SpikingClassifier(**params)
    try:
        clf.fit(X, y)
    except (ValueError, TypeError) as err:
        assert bad is not None, f"valid parameters were refused: {err}"
        assert bad in str(err), f"the error does not name {bad!r}: {err}"
        return
    # an "invalid" draw may be valid after all (e.g. method="sg" ignores the convex settings)
    assert set(clf.predict(X)) <= {"a", "b", "c"}
    assert clf.decision_function(X).shape == (n, 3)
