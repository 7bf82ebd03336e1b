"""The support Newton step on large supports: preconditioned conjugate gradients against the
Hessian written out, and counted Hessian-vector products (not timed)."""

import numpy as np
import pytest

import spikecvx.convex.prox_newton as pn


def _problem(seed=0, n=400, p=60, C=5):
    """A binary dictionary of near-duplicate columns (each a copy of one of 8 latent binary
    features with 2 % of its bits flipped, as spike dictionaries hold many similar neurons),
    softmax probabilities of a linear model on it, and a support of about 60 % of the entries."""
    rng = np.random.default_rng(seed)
    latent = rng.random((n, 8)) < 0.4
    X = np.asfortranarray((latent[:, rng.integers(0, 8, p)] ^ (rng.random((n, p)) < 0.02)).astype(np.float64))
    S = X @ rng.normal(size=(p, C)) * 0.5
    P = np.exp(S - S.max(axis=1, keepdims=True))
    P /= P.sum(axis=1, keepdims=True)
    mask = rng.random((p, C)) < 0.6
    grad = rng.normal(size=(p, C)) * mask
    return X, P, mask, grad


def _hessian(X, P, rows, cls):
    """hess[(j,c),(k,d)] = (1/n) sum_i x_ij x_ik (delta_cd p_ic - p_ic p_id), written out."""
    A = X[:, rows]
    hess = (A * P[:, cls]).T @ A * (cls[:, None] == cls[None, :])
    hess -= (A * P[:, cls]).T @ (A * P[:, cls])
    return hess / X.shape[0]


def _hess_vec(X, P, mask):
    n = X.shape[0]

    def hv(V):
        R = X @ V
        return X.T @ (P * R - P * np.sum(P * R, axis=1, keepdims=True)) / n * mask

    return hv


def test_class_preconditioner_solves_the_newton_system_in_fewer_products():
    X, P, mask, grad = _problem()
    mu = 1e-4
    rows, cls = np.nonzero(mask)
    reference = np.linalg.solve(_hessian(X, P, rows, cls) + mu * np.eye(len(rows)), grad[rows, cls])
    counts = {}
    for name, precondition in (("none", lambda r: r),
                               ("blocks", pn.class_preconditioner(X, P * (1 - P), mask, mu))):
        hv = _hess_vec(X, P, mask)
        calls = []

        def counted(V, hv=hv, calls=calls):
            calls.append(1)
            return hv(V)

        step = pn.pcg(counted, grad, mu, precondition, max_cg=1000, rtol=1e-10)
        np.testing.assert_allclose(step[rows, cls], reference, rtol=1e-6, atol=1e-9)
        assert np.all(step[~mask] == 0)
        counts[name] = len(calls)
    # the per-class blocks carry the correlation of a class's columns: measured 82 against 159
    # products to a relative residual of 1e-6 on this problem (on the MNIST preset's dictionary,
    # 2-7 against 17-33 to 1e-1)
    assert counts["blocks"] * 1.5 <= counts["none"], counts


def test_preconditioner_falls_back_to_the_diagonal_for_a_large_class(monkeypatch):
    X, P, mask, grad = _problem(seed=1)
    mu = 1e-2
    monkeypatch.setattr(pn, "CLASS_BLOCK_MAX", 10)  # every class is "large": diagonal blocks
    z = pn.class_preconditioner(X, P * (1 - P), mask, mu)(grad)
    diag = (X * X).T @ (P * (1 - P)) / X.shape[0] + mu
    np.testing.assert_allclose(z[mask], grad[mask] / diag[mask], rtol=1e-5)
    assert np.all(z[~mask] == 0)


def test_support_newton_conjugate_gradients_meet_the_forcing_term():
    X, P, mask, _ = _problem(seed=2)
    rng = np.random.default_rng(3)
    W = rng.normal(size=mask.shape) * mask
    G = rng.normal(size=(X.shape[0], mask.shape[1])) * 0.01
    reg = 1e-3
    cache = {}
    out = pn.support_newton(X, G, P, W, W, reg, True, dense_max=0, cache=cache, max_cg=500)
    assert np.all(out[~mask] == 0) and "precondition" in cache
    rows, cls = np.nonzero(mask)
    grad = (X.T @ G / X.shape[0] + reg * np.sign(W))[rows, cls]
    mu = pn.NEWTON_DAMPING * np.linalg.norm(grad)
    residual = (_hessian(X, P, rows, cls) + mu * np.eye(len(rows))) @ (W - out)[rows, cls] - grad
    eta = min(pn.CG_FORCING, np.sqrt(np.linalg.norm(grad)))
    # float32 products: the residual meets the forcing term up to their rounding
    assert np.linalg.norm(residual) <= 1.01 * eta * np.linalg.norm(grad)
    # the same support again reuses the block and the preconditioner
    kept = cache["precondition"]
    pn.support_newton(X, G, P, W, W, reg, True, dense_max=0, cache=cache, max_cg=500)
    assert cache["precondition"] is kept


@pytest.mark.parametrize("seed", [0, 1])
def test_large_support_softmax_solve_counts_products_and_matches_the_dense_step(seed, monkeypatch):
    """A softmax + L1 solve with every support Newton step on the conjugate-gradient branch reaches
    the same optimum as with the dense step, within the certificates, in a bounded number of
    Hessian-vector products."""
    from spikecvx.convex import reg_max, solve

    rng = np.random.default_rng(seed)
    n, p, C = 500, 80, 6
    D = (rng.random((n, p)) < 0.3).astype(np.uint8)
    y = np.argmax(D[:, :20] @ rng.normal(size=(20, C)) + rng.gumbel(size=(n, C)), axis=1)
    reg = reg_max(D, y, "softmax") / 30
    dense = solve(D, y, "softmax", reg=reg)
    monkeypatch.setattr(pn, "DENSE_NEWTON_MAX", 20)
    calls = []
    pcg = pn.pcg

    def counted(hess_vec, *args, **kw):
        def hv(V):
            calls.append(1)
            return hess_vec(V)
        return pcg(hv, *args, **kw)

    monkeypatch.setattr(pn, "pcg", counted)
    res = solve(D, y, "softmax", reg=reg)
    assert res.converged and dense.converged
    assert abs(res.primal - dense.primal) <= res.gap + dense.gap + 1e-12
    assert np.count_nonzero(res.coef) > 20  # the conjugate-gradient branch ran
    assert 0 < len(calls) <= 300, len(calls)


def test_solves_run_with_the_blas_thread_limit(monkeypatch):
    from threadpoolctl import threadpool_info

    import spikecvx.convex.solver as solver_module
    from spikecvx.convex import solve

    seen = []
    prox = solver_module.prox_newton

    def spy(*args, **kw):
        seen.append({i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"})
        return prox(*args, **kw)

    monkeypatch.setattr(solver_module, "prox_newton", spy)
    rng = np.random.default_rng(0)
    D, y = (rng.random((60, 12)) < 0.4).astype(np.uint8), rng.integers(0, 3, 60)
    before = {i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"}
    monkeypatch.setattr(solver_module, "BLAS_THREADS", 1)
    assert solve(D, y, "softmax", reg=1e-3).converged
    assert seen and all(s == {1} for s in seen)
    assert {i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"} == before  # restored
    monkeypatch.setattr(solver_module, "BLAS_THREADS", None)  # None: the BLAS as configured
    seen.clear()
    solve(D, y, "softmax", reg=1e-3)
    assert seen and all(s == before for s in seen)
