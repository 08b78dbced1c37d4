"""The checks every zoo architecture goes through, in either framework (see test_zoo_*.py).

inspect; plans in mode ``all`` and ``vanilla`` at PR 2x; compress -> finite outputs, fewer
parameters; low-rank weights planted in every eligible layer -> an energy plan (0.99999) keeps
the outputs within 1e-4 relative. Layers that cannot be factorized must be in the plan with method
``none`` and a reason. Tucker-2 runs as plain HOSVD (``tucker_iters=0``) to keep the suite fast;
it is exact on planted multilinear ranks.
"""
import numpy as np

from lrd_core.modes import MODES
from lrd_core.roles import NOT_RUN
from tests.conftest import forward

RESNET50_COUNTS = {"vanilla": 53, "mode1": 17, "mode2": 51, "mode3": 45, "mode4": 49, "mode5": 37}
PR2 = dict(rank_selection="pr", ratio=2.0, tucker_iters=0)


def n_params(fw, model) -> int:
    return sum(int(a.size) for a in fw.state_to_numpy(model).values())


def relative_error(out, ref) -> float:
    return float(np.abs(out - ref).max() / np.abs(ref).max())


def eligible(layers):
    """Layers a factor chain can replace: ungrouped, seen running, supported by the adapter."""
    return [l for l in layers if l.groups == 1 and not l.unsupported]


def low_rank(weight: np.ndarray, rng) -> np.ndarray:
    """A weight of the same shape and norm with a quarter of the rank on each channel mode."""
    o, i = weight.shape[:2]
    r_o, r_i = max(1, o // 4), max(1, i // 4)
    if weight.ndim == 2 or weight.shape[2:] == (1, 1):
        r = min(r_o, r_i)
        w = (rng.standard_normal((o, r)) @ rng.standard_normal((r, i))).reshape(weight.shape)
    else:
        core = rng.standard_normal((r_o, r_i) + weight.shape[2:])
        w = np.einsum("ab,cd,bdhw->achw", rng.standard_normal((o, r_o)), rng.standard_normal((i, r_i)), core,
                      optimize=True)
    return (w * np.linalg.norm(weight) / np.linalg.norm(w)).astype(np.float32)


def plant(fw, model, layers, seed=0) -> int:
    rng = np.random.default_rng(seed)
    arrays = fw.state_to_numpy(model)
    todo = eligible(layers)
    for l in todo:
        arrays[l.name + ".weight"] = low_rank(arrays[l.name + ".weight"], rng)
    fw.load_numpy(model, arrays)
    return len(todo)


def check_architecture(fw, build, input_shape, counts=None, grouped=0, not_run=0, seed=0):
    """Run every zoo check on the model ``build()`` returns; returns the mode-``all`` plan."""
    x = np.random.default_rng(seed).standard_normal((2,) + tuple(input_shape[1:])).astype(np.float32)
    model = build()
    layers = fw.inspect(model, input_shape=input_shape)
    names = [l.name for l in layers]
    assert len(names) == len(set(names)) > 0
    assert sum(l.groups > 1 for l in layers) == grouped
    assert sum(l.unsupported == NOT_RUN for l in layers) == not_run
    if counts is not None:
        assert {m: sum(1 for l in layers if MODES[m](l)) for m in counts} == counts
    plan = fw.plan(model, input_shape=input_shape, mode="all", **PR2)
    vanilla = fw.plan(model, input_shape=input_shape, mode="vanilla", **PR2)
    assert [lp.name for lp in plan.layers] == [lp.name for lp in vanilla.layers] == names
    for lp in plan.layers:
        if lp.info.groups > 1 or lp.info.unsupported:
            assert lp.method == "none" and lp.reason and ("grouped" in lp.reason or lp.reason == lp.info.unsupported)
    assert plan.decomposed()
    if counts is not None:
        assert sum(lp.selected for lp in vanilla.layers) == counts["vanilla"] and vanilla.decomposed()
    ref = forward(fw, model, x)
    before = n_params(fw, model)
    fw.compress(model, plan)
    out = forward(fw, model, x)
    assert out.shape == ref.shape and np.all(np.isfinite(out))
    assert n_params(fw, model) < before

    model = build()
    assert plant(fw, model, layers, seed) > 0
    ref = forward(fw, model, x)
    exact = fw.plan(model, input_shape=input_shape, mode="all", rank_selection="energy", energy=0.99999,
                    tucker_iters=0)
    assert len(exact.decomposed()) >= len(eligible(layers)) // 2
    fw.compress(model, exact)
    assert relative_error(forward(fw, model, x), ref) <= 1e-4
    return plan
