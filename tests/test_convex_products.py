"""The compiled uint8 products (convex/_products.py) against numpy's float64 and int64 products."""

import numpy as np
import pytest

from spikecvx.convex import matrix, reg_max, solve
from spikecvx.convex import weights as weights_module
from spikecvx.convex._products import column_sq_norms_uint8, rmatmul_uint8, row_hashes
from spikecvx.convex.matrix import DesignMatrix


def _uint8(n, p, seed, top=1):
    rng = np.random.default_rng(seed)
    return rng.integers(0, top + 1, size=(n, p)).astype(np.uint8)


@pytest.mark.parametrize("order", ["C", "F"])
@pytest.mark.parametrize("shape", [(37,), (37, 1), (37, 3)])
def test_rmatmul_matches_the_float64_product(order, shape):
    D = np.asarray(_uint8(37, 23, 0, top=255), order=order)
    U = np.random.default_rng(1).normal(size=shape)
    ref = D.astype(np.float64).T @ U
    out = rmatmul_uint8(D, U)
    assert out.shape == ref.shape
    np.testing.assert_allclose(out, ref, rtol=1e-13, atol=1e-10)
    np.testing.assert_allclose(matrix.rmatmul(D, U), ref, rtol=1e-13, atol=1e-10)


def test_a_strided_uint8_matrix_takes_the_chunked_route():
    D = _uint8(30, 40, 2)[:, ::2]  # neither C- nor Fortran-contiguous
    U = np.random.default_rng(3).normal(size=(30, 2))
    assert rmatmul_uint8(D, U) is None and row_hashes(D, np.ones((20, 2), dtype=np.int64)) is None
    np.testing.assert_allclose(matrix.rmatmul(D, U), D.astype(np.float64).T @ U, rtol=1e-13)
    np.testing.assert_array_equal(DesignMatrix(D).column_sq_norms, (D.astype(np.float64) ** 2).sum(0))


@pytest.mark.parametrize("order", ["C", "F"])
def test_row_hashes_are_numpys_wrapping_int64_product(order):
    D = np.asarray(_uint8(50, 31, 4, top=255), order=order)
    D[10] = D[3]  # identical rows get identical keys
    rng = np.random.default_rng(5)
    R = rng.integers(2**60, 2**62, size=(31, 2))  # large enough that the sums wrap around
    keys = row_hashes(D, R)
    np.testing.assert_array_equal(keys, D.astype(np.int64) @ R)
    np.testing.assert_array_equal(keys[10], keys[3])


@pytest.mark.parametrize("order", ["C", "F"])
def test_column_sq_norms_are_exact(order):
    D = np.asarray(_uint8(64, 17, 6, top=255), order=order)
    np.testing.assert_array_equal(column_sq_norms_uint8(D), (D.astype(np.float64) ** 2).sum(0))
    np.testing.assert_allclose(DesignMatrix(D).column_norms, np.linalg.norm(D.astype(np.float64), axis=0))


def test_merged_rows_are_the_same_in_either_memory_order():
    D = _uint8(300, 6, 7)  # at most 64 distinct rows
    y = np.where(np.random.default_rng(8).random(300) < 0.5, 1.0, -1.0)[:, None]
    c = weights_module.reduce_rows(DesignMatrix(D), y, None)
    f = weights_module.reduce_rows(DesignMatrix(np.asfortranarray(D)), y, None)
    exact = weights_module._exact_groups(DesignMatrix(D), y, np.arange(300))
    assert c.merged and len(c.rows) == len(exact[0])
    np.testing.assert_array_equal(c.rows, f.rows)
    np.testing.assert_array_equal(c.inverse, f.inverse)


def test_uint8_and_float64_dictionaries_solve_to_the_same_optimum():
    D = _uint8(200, 120, 9)
    y = np.random.default_rng(10).normal(size=200)
    reg = reg_max(D, y, "squared") / 10
    assert reg == pytest.approx(reg_max(D.astype(np.float64), y, "squared") / 10, rel=1e-13)
    a = solve(D, y, "squared", "l1", reg, tol=1e-10)
    b = solve(D.astype(np.float64), y, "squared", "l1", reg, tol=1e-10)
    assert a.converged and b.converged
    assert a.primal == pytest.approx(b.primal, rel=1e-9)


def test_mismatched_shapes_are_refused_not_read_out_of_bounds():
    D = _uint8(40, 7, 11)
    for order in ("C", "F"):
        Do = np.asarray(D, order=order)
        with pytest.raises(ValueError, match="rows"):
            rmatmul_uint8(Do, np.ones((30, 2)))
        with pytest.raises(ValueError, match="columns"):
            row_hashes(Do, np.ones((5, 2), dtype=np.int64))
