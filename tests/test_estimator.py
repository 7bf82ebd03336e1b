"""SpikingClassifier: scikit-learn's estimator checks, pipelines, persistence, bad input."""

import warnings

import numpy as np
import pytest
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from spikecvx import SpikingClassifier
from spikecvx.tasks import first_last_xor

SMALL = dict(width=10, last_width=20, n_regs=2, epochs=5, lrs=(1e-2,))


@parametrize_with_checks([SpikingClassifier(**SMALL)])
def test_sklearn_estimator_checks(estimator, check):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        check(estimator)


def _xor():
    X, y = first_last_xor(400, 5, seed=0)
    return X, np.where(y > 0, "odd", "even")


@pytest.mark.parametrize("method", ["cvx", "sg", "sg-cvx", "cvx-sg"])
def test_methods_fit_sequences_with_string_labels(method):
    X, y = _xor()
    clf = SpikingClassifier(method=method, width=40, last_width=200, epochs=30, n_regs=4).fit(X, y)
    assert set(clf.predict(X)) <= {"odd", "even"}
    assert clf.predict_proba(X).shape == (400, 2)
    if method in ("cvx", "sg-cvx"):
        cert = clf.certificate_
        assert cert["rel_gap"] <= 1e-6 and cert["distinct_columns"] <= cert["dictionary_neurons"]
        assert clf.score(X, y) > 0.9
    else:
        assert clf.score(X, y) > 0.5


def test_grid_search_and_pipeline():
    X, y = _xor()
    X2 = X.reshape(len(X), -1)  # 2-D input cut back into 5 steps
    pipe = make_pipeline(StandardScaler(), SpikingClassifier(time_steps=5, width=20, last_width=100,
                                                             n_regs=3))
    gs = GridSearchCV(pipe, {"spikingclassifier__beta": [0.5, 0.9]}, cv=2).fit(X2, y)
    assert gs.best_params_["spikingclassifier__beta"] in (0.5, 0.9)


def test_save_load_round_trip(tmp_path):
    X, y = _xor()
    clf = SpikingClassifier(width=20, last_width=100, n_regs=3).fit(X, y)
    clf.save(tmp_path / "clf.pt")
    back = SpikingClassifier.load(tmp_path / "clf.pt")
    np.testing.assert_array_equal(back.decision_function(X), clf.decision_function(X))
    assert back.get_params() == clf.get_params() and back.certificate_ == clf.certificate_


def test_bad_input():
    X, y = _xor()
    with pytest.raises(ValueError, match="1 class"):
        SpikingClassifier(**SMALL).fit(X, np.zeros(len(X)))
    with pytest.raises(ValueError, match="method"):
        SpikingClassifier(method="adam").fit(X, y)
    clf = SpikingClassifier(**SMALL).fit(X, y)
    with pytest.raises(ValueError, match="expecting 5|sequence layout"):
        clf.predict(X[:, :4])
    with pytest.raises(ValueError):
        clf.predict(X[..., :1])
    bad = X.copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        SpikingClassifier(**SMALL).fit(bad, y)
