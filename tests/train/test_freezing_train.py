"""Freezing during real training steps, both frameworks (MindSpore in GRAPH mode, where toggling
requires_grad after compile would do nothing)."""
import numpy as np

from lrd_core import freezing
from lrd_core.freezing import FreezeConfig
from lrd_data import Loader

from .helpers import compressed_tiny, graph_mode, params, tiny_data, train_module


def _run(fw, freeze, steps=6, every=2):
    model, plan = compressed_tiny(fw)
    snaps = [params(fw, model)]
    data = Loader(tiny_data(48 if steps == 6 else 64), 16, seed=0)      # 3 steps x 2 epochs, or 4 x 1
    cfg = FreezeConfig(freeze, every=every, unit="step")
    with graph_mode(fw):
        train_module(fw).fit(model, data, np.full(steps, 0.05, np.float32), 2 if steps > 4 else 1, plan=plan,
                             freeze=cfg, weight_decay=1e-3, momentum=0.9, log=None,
                             on_step=[lambda state: snaps.append(params(fw, model))])
    return plan, cfg, snaps[:steps + 1]


def _changed(a, b):
    return {k for k in a if not np.array_equal(a[k], b[k])}


def test_sequential_phases_freeze_bit_exact_and_cycle(fw):
    plan, cfg, snaps = _run(fw, "sequential", steps=6, every=2)
    factors = freezing.factor_parameters(plan)
    others = {k for k in snaps[0] if k not in factors and not k.endswith("num_batches_tracked")}
    for step in range(6):
        phase = step // 2
        frozen = freezing.frozen_parameters(plan, cfg, phase)
        changed = _changed(snaps[step], snaps[step + 1])
        # frozen factors bit-identical (no momentum / weight decay leak from the previous phase)
        assert not (changed & frozen), (step, sorted(changed & frozen))
        # every trainable factor and every other parameter moved
        assert (set(factors) - frozen) <= changed, (step, sorted(set(factors) - frozen - changed))
        assert others <= changed
    # the three phases train first / (core | last) / (last | first), as configured
    assert freezing.trainable_positions(plan, cfg, 1) == {"conv1": ["core"], "conv2": ["core"], "conv3": ["last"],
                                                          "fc": ["last"]}
    moved = set().union(*(_changed(snaps[s], snaps[s + 1]) for s in (2, 3))) & set(factors)
    assert moved == {"conv1.1.weight", "conv2.1.weight", "conv3.1.weight", "fc.1.weight", "fc.1.bias"}


def test_regular_freezing_keeps_first_factors_for_the_whole_run(fw):
    plan, cfg, snaps = _run(fw, "regular", steps=4)
    first = {k for k, (_, pos) in freezing.factor_parameters(plan).items() if pos == "first"}
    for k in first:
        assert np.array_equal(snaps[0][k], snaps[-1][k]), k
    assert {"conv1.1.weight", "conv2.2.weight", "fc.1.weight"} <= _changed(snaps[0], snaps[-1])


def test_frozen_parameters_get_no_gradient(lrd_torch, lrd_mindspore):
    """torch: frozen .grad stays None after a step; MindSpore: the phase cell differentiates only
    the trainable parameters (its optimizer holds exactly them)."""
    import torch
    from lrd_torch import freeze_phase
    from lrd_torch.train import make_optimizer

    model, plan = compressed_tiny(lrd_torch)
    frozen = set(freeze_phase(model, plan, "sequential", 0))
    opt = make_optimizer(model)
    data = tiny_data(16)
    opt.zero_grad(set_to_none=True)
    torch.nn.functional.cross_entropy(model(torch.from_numpy(data.x)), torch.from_numpy(data.y).long()).backward()
    named = dict(model.named_parameters())
    assert all(named[n].grad is None for n in frozen)
    assert all(p.grad is not None for n, p in named.items() if n not in frozen)

    from mindspore import nn
    from lrd_mindspore import BACKEND
    from lrd_mindspore.train import PhaseSteps

    net, plan = compressed_tiny(lrd_mindspore)
    steps = PhaseSteps(net, nn.CrossEntropyLoss(), np.full(4, 0.1, np.float32), 0.9, 1e-4)
    frozen = freezing.frozen_parameters(plan, "sequential", 1)
    cell = steps.get(frozen)
    by_id = {id(p): k for k, p in BACKEND.tensors(net).items()}
    differentiated = {by_id[id(p)] for p in cell.weights}
    assert differentiated == set(steps.params) - frozen
    assert {by_id[id(p)] for p in steps.get(frozenset()).weights} == set(steps.params)
    assert len(steps.cache) == 2 and steps.get(frozen) is cell      # cached per phase
