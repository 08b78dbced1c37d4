"""CPD-EPC on real kernels: a ResNet-18 (width 8) trained on the digits for one epoch, then CP-3 / CP-4 with
EPC: the kernel error stays within the CPD's own (1e-9 relative) while the sensitivity falls."""
import numpy as np
import pytest

from lrd_core.factorize.cp import cp3, cp4, cp_chain_factors, fold_cp
from lrd_core.factorize.epc import sensitivity
from lrd_data import load_digits


@pytest.fixture(scope="module")
def trained():
    import lrd_torch
    from lrd_torch.train import fit

    train, _ = load_digits(size=32, seed=0)
    model = lrd_torch.models.resnet18(num_classes=10, stem="cifar", width=8, seed=0)
    fit(model, train.take(512), [0.05] * 16, 1, batch_size=32, log=None)
    return lrd_torch.state_to_numpy(model)


@pytest.mark.parametrize("fn", [cp3, cp4])
@pytest.mark.parametrize("layer", ["layer1.0.conv2", "layer3.0.conv1"])
def test_epc_on_digits_trained_kernels(trained, fn, layer):
    w = trained[layer + ".weight"]
    rank = max(4, w.shape[0] // 2)
    subs, report = fn(w, rank, epc=True, n_iter=40, epc_iter=30)
    e0, e1 = report["error"]
    s0, s1 = report["sensitivity"]
    assert 0 < e0 < 1 and e1 <= e0 * (1 + 1e-9)
    assert s1 < s0                                                      # seen: 0.997x (rank 4 of 8) .. 0.3x
    full = np.asarray(w, np.float64)
    err = np.linalg.norm(fold_cp(subs).reshape(full.shape) - full) / np.linalg.norm(full)
    assert err == pytest.approx(e1, rel=1e-5)                           # the chain carries the EPC factors
    assert sensitivity(cp_chain_factors(subs)) == pytest.approx(s1, rel=1e-4)
    print(layer, fn.__name__, rank, round(s1 / s0, 3))
