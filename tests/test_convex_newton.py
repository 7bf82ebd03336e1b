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


@pytest.mark.parametrize("coupled", [True, False])
@pytest.mark.parametrize("small_entries", [0, 2**30])
def test_support_hessian_matches_its_definition_on_both_routes(coupled, small_entries, monkeypatch):
    """The blocked route (per-class blocks, rows a chunk at a time, uint8 widened per chunk) and the
    whole-block route for small supports both equal the Hessian entry by entry."""
    monkeypatch.setattr(pn, "SMALL_HESSIAN_ENTRIES", small_entries)
    monkeypatch.setattr(pn, "CHUNK_BYTES", 4096)  # several row chunks on the blocked route
    X, P, mask, _ = _problem(seed=3, n=300, p=20, C=4)
    rows, cls = np.nonzero(mask)
    got = pn.support_hessian(X.astype(np.uint8), P, rows, cls, coupled)
    n, s = X.shape[0], len(rows)
    want = np.empty((s, s))
    for a in range(s):
        for b in range(s):
            same = P[:, cls[a]] if cls[a] == cls[b] else 0.0
            both = P[:, cls[a]] * P[:, cls[b]] if coupled else 0.0
            want[a, b] = np.sum(X[:, rows[a]] * X[:, rows[b]] * (same - both)) / n
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14)
def test_class_blocks_reuse_a_block_for_a_support_that_lost_entries():
    """Entries that left the support: the kept block's principal sub-block, nothing formed, and
    the same preconditioner as one formed afresh on the smaller support."""
    X, P, mask, grad = _problem(seed=4)
    Hs, mu = P * (1 - P), 1e-3
    blocks = pn.ClassBlocks()
    blocks.preconditioner(X, Hs, mask, mu)
    formed = blocks.formed
    assert formed == mask.shape[1]
    smaller = mask.copy()
    for c in range(mask.shape[1]):  # drop two entries of every class
        smaller[np.flatnonzero(mask[:, c])[:2], c] = False
    reused = blocks.preconditioner(X, Hs, smaller, mu)(grad * smaller)
    assert blocks.formed == formed
    fresh = pn.class_preconditioner(X, Hs, smaller, mu)(grad * smaller)
    np.testing.assert_allclose(reused, fresh, rtol=1e-6, atol=1e-12)
    assert np.all(reused[~smaller] == 0)


def test_class_blocks_give_new_entries_their_diagonal_and_reform_on_curvature_drift():
    X, P, mask, grad = _problem(seed=5)
    Hs, mu = P * (1 - P), 1e-3
    blocks = pn.ClassBlocks()
    blocks.preconditioner(X, Hs, mask, mu)
    formed = blocks.formed
    c = 0
    new = np.flatnonzero(~mask[:, c])[:1]  # one entry joins class 0 (below BLOCK_REFORM_FRACTION)
    larger = mask.copy()
    larger[new, c] = True
    z = blocks.preconditioner(X, Hs, larger, mu)(grad + larger)
    assert blocks.formed == formed
    diag = (X[:, new[0]] ** 2) @ Hs[:, c] / X.shape[0] + mu
    np.testing.assert_allclose(z[new[0], c], (grad + larger)[new[0], c] / diag, rtol=1e-5)
    # a preconditioner on the grown support still solves the system (it is symmetric positive
    # definite): conjugate gradients reach the same step as without it
    hv = _hess_vec(X, P, larger)
    g = grad * larger
    with_blocks = pn.pcg(hv, g, mu, blocks.preconditioner(X, Hs, larger, mu), max_cg=1000, rtol=1e-10)
    plain = pn.pcg(hv, g, mu, lambda r: r, max_cg=1000, rtol=1e-10)
    np.testing.assert_allclose(with_blocks, plain, rtol=1e-5, atol=1e-9)
    # the curvature moved by more than CURVATURE_DRIFT: every block is formed afresh
    blocks.preconditioner(X, Hs * 1.1, larger, mu)
    assert blocks.formed == formed + mask.shape[1]


def test_screened_zero_entries_stay_out_of_the_sweeps():
    """The kernel leaves screened zero entries alone (even with a gradient that would move them)
    and solves the same model as without the screen when the screened entries belong at zero."""
    from spikecvx.convex.penalties import get_penalty

    rng = np.random.default_rng(6)
    n, p, C = 200, 30, 4
    X = np.asfortranarray((rng.random((n, p)) < 0.4).astype(np.float64))
    P = rng.dirichlet(np.ones(C), size=n)
    G = rng.normal(size=(n, C)) * 0.1
    pen = get_penalty("l1")
    g = np.abs(X.T @ G / n)
    reg = float(np.quantile(g, 0.7))  # about 30 % of the entries would enter

    def model(screened):
        W, dW, R = np.zeros((p, C)), np.zeros((p, C)), np.zeros((n, C))
        pn.quadratic_model_cd(pen.prox, pen.params, X, G, P, W, dW, R, reg, False, True, 200, 1e-14,
                              np.ascontiguousarray(screened))
        return dW

    free = model(np.zeros((p, C), dtype=bool))
    assert np.count_nonzero(free) > 0
    everything = model(np.ones((p, C), dtype=bool))
    assert np.all(everything == 0)
    far_inside = (g < 0.2 * reg) & (free == 0)
    assert far_inside.any()
    np.testing.assert_allclose(model(far_inside), free, rtol=1e-8, atol=1e-12)


def test_path_on_a_near_duplicate_dictionary_counts_sweeps_products_and_blocks(monkeypatch):
    """A softmax + L1 path whose support Newton steps all run conjugate gradients: the counted
    model solves, Hessian-vector products and preconditioner blocks formed stay bounded, and
    reusing the blocks forms fewer of them than forming every block afresh, at the same optimum
    (objectives within the certificates)."""
    from spikecvx.convex import path, reg_max

    rng = np.random.default_rng(0)
    n, p, C = 800, 150, 10
    latent = rng.random((n, 12)) < 0.4
    D = (latent[:, rng.integers(0, 12, p)] ^ (rng.random((n, p)) < 0.03)).astype(np.uint8)
    y = np.argmax(D[:, :40] @ rng.normal(size=(40, C)) + 2 * rng.gumbel(size=(n, C)), axis=1)
    regs = reg_max(D, y, "softmax") / np.array([3, 10, 30, 100])
    monkeypatch.setattr(pn, "DENSE_NEWTON_MAX", 40)
    kernel, pcg, gram = pn.quadratic_model_cd, pn.pcg, pn.ClassBlocks._gram

    def run():
        counts = dict(sweeps=0, products=0, blocks=0)

        def sweeps(*args):
            counts["sweeps"] += 1
            return kernel(*args)

        def counted_pcg(hess_vec, *args, **kw):
            def hv(V):
                counts["products"] += 1
                return hess_vec(V)
            return pcg(hv, *args, **kw)

        def counted_gram(X, h, idx, diagonal=False):
            counts["blocks"] += not diagonal
            return gram(X, h, idx, diagonal)

        monkeypatch.setattr(pn, "quadratic_model_cd", sweeps)
        monkeypatch.setattr(pn, "pcg", counted_pcg)
        monkeypatch.setattr(pn.ClassBlocks, "_gram", staticmethod(counted_gram))
        results = path(D, y, "softmax", regs=regs)
        assert all(r.converged for r in results)
        assert np.count_nonzero(results[-1].coef) > 200  # the conjugate-gradient branch ran
        return results, counts

    reused, counts = run()
    # measured: 17 model solves, 174 products, 109 blocks formed (119 when every support forms
    # its blocks afresh, at the same number of products)
    assert counts["sweeps"] <= 25 and counts["products"] <= 260 and counts["blocks"] <= 130, counts
    monkeypatch.setattr(pn, "BLOCK_REFORM_FRACTION", -1.0)  # every support forms its blocks afresh
    afresh, counts_afresh = run()
    assert counts["blocks"] < counts_afresh["blocks"], (counts, counts_afresh)
    assert counts["products"] <= 1.1 * counts_afresh["products"], (counts, counts_afresh)
    for a, b in zip(reused, afresh):
        assert abs(a.primal - b.primal) <= a.gap + b.gap + 1e-12
