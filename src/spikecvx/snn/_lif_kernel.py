"""Compiled no-grad LIF scan for the CPU: one pass over the currents, outputs written in place.

The torch version of the scan issues several tensor operations per time step and keeps float
spikes and membranes for every step. Building a dictionary needs neither: hidden layers need
their float spikes (the next layer's matrix product reads them) and the last layer only its
binary features, as uint8. This kernel reads each current once, keeps the membrane in a
register, and writes only what is asked for, in parallel over samples.

The arithmetic is the same as ``lif._scan_inplace`` (and snnTorch's ``Leaky``), operation by
operation, so spikes are bitwise identical:  subtract: u = (beta * u + I) - theta * r;
zero: u = beta * ((1 - r) * u) + I;  s = u > theta.

Recurrent layers run ``lif_scan_kernel_recurrent``, which adds R, the sum of the recurrent
weight rows of the neurons that spiked at the previous step, in snnTorch's ``RLeaky`` order:
subtract: u = ((beta * u + I) + R) - theta * r;  zero: u = (beta * ((1 - r) * u) + I) + R.
Spikes are 0/1, so R is summed over the active neurons only, in ascending order: one fixed
order, the same for every batch and time chunk. Feed-forward layers keep the kernel above, whose
inner loop over neurons the compiler vectorises.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

FEATURE_SPIKE = 0
FEATURE_MEMBRANE = 1


@njit(parallel=True, cache=True)
def lif_scan_kernel(cur, beta, theta, one, zero_reset, u, r, spikes, mems, feats, feat_mode, feat_bias):
    """Scan LIF neurons over a batch-major chunk of currents, updating the state in place.

    Args:
        cur: (K, N, T, M) input currents (K groups of neurons, e.g. branches, each with its own
            N samples x M neurons), float32 or float64.
        beta: (M,) leak per neuron (same dtype as ``cur``).
        theta, one: the firing threshold and 1, as scalars of the currents' dtype (so all
            arithmetic stays in that dtype, as in torch; a Python float would promote to float64).
        zero_reset: reset to zero (True) or by subtraction (False).
        u, r: (K, N, M) membrane and previous spike (0/1) before the chunk; updated to the
            state after.
        spikes: (K, N, T, M) float output of spikes, or an empty (0, 0, 0, 0) array to skip it.
        mems: (K, N, T, M) float output of membranes, or an empty array to skip it.
        feats: uint8 output of binary features, (K, N, T, M) for every step, (K, N, 1, M) for
            the last step only, or an empty array to skip it. Any strides.
        feat_mode: FEATURE_SPIKE (u > theta) or FEATURE_MEMBRANE ((u - feat_bias) >= 0).
        feat_bias: binarisation level of the membrane feature (a scalar of the currents' dtype).
    """
    K, N, T, M = cur.shape
    want_s = spikes.shape[0] > 0
    want_u = mems.shape[0] > 0
    every = feats.shape[0] > 0 and feats.shape[2] == T
    last = feats.shape[0] > 0 and feats.shape[2] == 1
    for kn in prange(K * N):
        k, n = kn // N, kn % N
        for t in range(T):
            for m in range(M):
                x = cur[k, n, t, m]
                v = u[k, n, m]
                if zero_reset:
                    v = beta[m] * ((one - r[k, n, m]) * v) + x
                else:
                    v = (beta[m] * v + x) - theta * r[k, n, m]
                s = v > theta
                u[k, n, m] = v
                r[k, n, m] = s
                if want_s:
                    spikes[k, n, t, m] = s
                if want_u:
                    mems[k, n, t, m] = v
                if every or (last and t == T - 1):
                    if feat_mode == FEATURE_SPIKE:
                        f = s
                    else:
                        f = (v - feat_bias) >= 0
                    feats[k, n, 0 if last else t, m] = f


@njit(parallel=True, cache=True)
def lif_scan_kernel_recurrent(cur, beta, theta, one, zero_reset, u, r, spikes, mems, feats, feat_mode,
                              feat_bias, rec):
    """``lif_scan_kernel`` for a recurrent layer: ``rec`` (K, M, M) holds each group's recurrent
    weights (row j: the weights of neuron j's spike onto the group's neurons)."""
    K, N, T, M = cur.shape
    want_s = spikes.shape[0] > 0
    want_u = mems.shape[0] > 0
    every = feats.shape[0] > 0 and feats.shape[2] == T
    last = feats.shape[0] > 0 and feats.shape[2] == 1
    for kn in prange(K * N):
        k, n = kn // N, kn % N
        acc = np.empty(M, cur.dtype)  # the recurrent input of one step
        for t in range(T):
            acc[:] = 0
            for j in range(M):
                if r[k, n, j] != 0:
                    for m in range(M):
                        acc[m] += rec[k, j, m]
            for m in range(M):
                x = cur[k, n, t, m]
                v = u[k, n, m]
                if zero_reset:
                    v = (beta[m] * ((one - r[k, n, m]) * v) + x) + acc[m]
                else:
                    v = ((beta[m] * v + x) + acc[m]) - theta * r[k, n, m]
                s = v > theta
                u[k, n, m] = v
                r[k, n, m] = s
                if want_s:
                    spikes[k, n, t, m] = s
                if want_u:
                    mems[k, n, t, m] = v
                if every or (last and t == T - 1):
                    if feat_mode == FEATURE_SPIKE:
                        f = s
                    else:
                        f = (v - feat_bias) >= 0
                    feats[k, n, 0 if last else t, m] = f


def run_kernel(cur, beta, theta, zero_reset, u, r, spikes=None, mems=None, feats=None,
               feat_mode=FEATURE_SPIKE, feat_bias=0.0, rec=None) -> None:
    """Call the scan kernel (the recurrent one when ``rec`` is given) with scalars cast to the
    currents' dtype and None for skipped outputs."""
    typ = cur.dtype.type
    # an empty (0, 0, 0, 0) array is what the kernel reads as "do not write this output"
    none_f, none_b = np.empty((0, 0, 0, 0), cur.dtype), np.empty((0, 0, 0, 0), np.uint8)
    args = (cur, beta, typ(theta), typ(1), bool(zero_reset), u, r,
            none_f if spikes is None else spikes, none_f if mems is None else mems,
            none_b if feats is None else feats, feat_mode, typ(feat_bias))
    if rec is None:
        lif_scan_kernel(*args)
    else:
        lif_scan_kernel_recurrent(*args, rec)
