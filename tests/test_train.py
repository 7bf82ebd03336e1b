
import numpy as np
import pytest
import torch

from spikecvx import ParallelSNN, sample_witnesses, spike_dictionary
from spikecvx.convex import reg_max, solve
from spikecvx.tasks import first_last_xor
from spikecvx.train import path_norm_objective, reconstruct


@pytest.mark.parametrize("dedup", [False, True])
@pytest.mark.parametrize("layers", [2, 3])
def test_reconstruction_outputs_equal_D_coef_and_pruning_is_exact(dedup, layers):
    X, y = first_last_xor(300, 5, seed=0)
    net = ParallelSNN(2, 1, layers=layers, branches=2, width=20, last_width=60, seed=1)
    sample_witnesses(net, seed=1)
    D = spike_dictionary(net, X, dedup=dedup)
    res = solve(D.matrix, y, "hinge", reg=reg_max(D.matrix, y, "hinge") / 20)
    full = reconstruct(net, res, D, prune=False)
    pruned = reconstruct(net, res, D)
    with torch.no_grad():
        out_full = full(torch.as_tensor(X)).double().numpy()[:, 0]
        out_pruned = pruned(torch.as_tensor(X)).double().numpy()[:, 0]
    expected = D.matrix.astype(float) @ res.coef
    assert np.allclose(out_full, expected, atol=1e-5)
    assert np.allclose(out_pruned, expected, atol=1e-5)
    assert pruned.last_width < net.last_width and pruned.last_width % 2 == 0
    # the path-regularised non-convex objective of the reconstruction equals the convex optimum
    Dn = spike_dictionary(full, X).matrix
    assert path_norm_objective(full, Dn, y, "hinge", res.reg) == pytest.approx(res.primal, rel=1e-6)


def test_reconstruct_rejects_wrong_size():
    net = ParallelSNN(2, 1, layers=3, branches=2, width=8, last_width=8)
    with pytest.raises(ValueError, match="last-layer neurons"):
        reconstruct(net, type("R", (), {"coef": np.zeros(5)})())


def test_first_last_xor_labels_and_balance():
    X, y = first_last_xor(1001, 7, seed=3)
    bits = X.argmax(-1)
    assert X.shape == (1001, 7, 2) and np.all(X.sum(-1) == 1)
    assert np.array_equal(y, np.where(bits[:, 0] ^ bits[:, -1], 1.0, -1.0))
    assert (y == 1).sum() == 501 and (y == -1).sum() == 500
    assert np.array_equal(first_last_xor(50, 4, seed=1)[0], first_last_xor(50, 4, seed=1)[0])
    with pytest.raises(ValueError, match="T"):
        first_last_xor(10, 1)




def test_sg_init_scales_recurrent_weights_and_keeps_feed_forward_draws():
    import math

    from spikecvx.train.sg import RECURRENT_RADIUS, sg_init
    kw = dict(d_in=3, n_out=2, layers=2, branches=2, width=64, last_width=64, seed=0)
    ff, rec = sg_init(ParallelSNN(**kw)), sg_init(ParallelSNN(**kw, recurrent=True))
    for a, b in zip(ff.hidden, rec.hidden):
        assert torch.equal(a, b)
    for v in rec.recurrent_weights:
        std = RECURRENT_RADIUS / math.sqrt(v.shape[-1])
        assert abs(float(v.std()) - std) < 0.2 * std
