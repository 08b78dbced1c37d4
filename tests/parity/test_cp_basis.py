"""CP-3 / CP-4 (+ CPD-EPC) and basis convolutions through plan, both adapters, files, export, freezing and
multi-stage: one plan gives the same network in torch and MindSpore."""
import numpy as np
import pytest

from lrd_core import Plan
from lrd_core.factorize import fold
from lrd_core.factorize.cp import cp_redecompose
from lrd_core.multistage import StageConfig
from lrd_core.naming import is_num_batches
from tests.conftest import forward, perturb_bn

X = np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32)
SHAPE = (1, 3, 32, 32)
METHODS = {
    "cp3_epc": dict(conv_method="cp3", epc=True),
    "cp4": dict(conv_method="cp4"),
    "basis_svd": dict(conv_method="basis"),
    "basis_qr": dict(conv_method="basis", basis_init="qr"),
    "basis_ab": dict(conv_method="basis", basis_alpha=0.5, basis_beta=0.25),
}
NEW_CHAINS = ("cp3_epc", "cp4", "basis_ab")          # chains with depthwise or combine layers
LAYERS = ["layer1.0.conv1", "layer2.0.conv1", "layer2.0.conv2", "layer3.1.conv2"]     # 2.0.conv1: stride 2


def small(fw, seed=1):
    model = fw.models.resnet18(num_classes=10, stem="cifar", width=8, seed=seed)
    return fw.load_numpy(model, perturb_bn(fw.state_to_numpy(model), seed=seed))


def make_plan(fw, model, key):
    plan = fw.plan(model, input_shape=SHAPE, mode=None, include=LAYERS, ratio=2.0, cp_iters=15, epc_iters=10,
                   **METHODS[key])
    return Plan.from_dict(plan.to_dict())                    # what a plan.json file holds


def rel(a, b):
    return float(np.abs(a - b).max() / np.abs(b).max())


@pytest.mark.parametrize("key", list(METHODS))
def test_one_plan_gives_the_same_network_in_both_frameworks(lrd_torch, lrd_mindspore, key):
    t_model = small(lrd_torch)
    weights = lrd_torch.state_to_numpy(t_model)
    m_model = lrd_mindspore.load_numpy(lrd_mindspore.models.resnet18(num_classes=10, stem="cifar", width=8), weights)
    plan = make_plan(lrd_torch, t_model, key)
    method = METHODS[key]["conv_method"]
    kxk = plan.decomposed()
    assert [lp.name for lp in kxk] == LAYERS and {lp.method for lp in kxk} == {method}
    fixed = lrd_torch.count_params(t_model) - plan.totals["params_before"]          # BatchNorm affine
    lrd_torch.compress(t_model, plan)
    lrd_mindspore.compress(m_model, plan)
    a, b = forward(lrd_torch, t_model, X), forward(lrd_mindspore, m_model, X)
    assert rel(b, a) <= 1e-5                                             # seen: 3e-7 .. 1e-6
    ta, ma = lrd_torch.state_to_numpy(t_model), lrd_mindspore.state_to_numpy(m_model)
    assert {k for k in ta if not is_num_batches(k)} == set(ma)
    for k, v in ma.items():
        assert v.dtype == ta[k].dtype, k
        np.testing.assert_allclose(v, ta[k], rtol=1e-6, atol=1e-7)
    assert lrd_torch.count_params(t_model) == lrd_mindspore.count_params(m_model)
    assert lrd_torch.count_params(t_model) == plan.totals["params_after"] + fixed
    # the live chains fold back to kernels at the error the plan reported (CP) / at most the layer's norm
    chains = lrd_torch.multistage.read_chains(t_model, plan) if method != "basis" else {}
    for lp in kxk:
        w = weights[lp.name + ".weight"].astype(np.float64)
        if method in ("cp3", "cp4"):
            err = np.linalg.norm(fold(method, chains[lp.name]).reshape(w.shape) - w) / np.linalg.norm(w)
            assert err == pytest.approx(lp.cp["error"][1], rel=1e-4)
            assert lp.cp["error"][1] <= lp.cp["error"][0] * (1 + 1e-9)
            assert lp.cp["sensitivity"][1] <= lp.cp["sensitivity"][0] * (1 + 1e-12)
            if METHODS[key].get("epc"):
                assert lp.cp["sensitivity"][1] < lp.cp["sensitivity"][0]
        else:
            assert lp.cp is None


def test_full_basis_reproduces_the_network(fw):
    model = small(fw, seed=2)
    ref = forward(fw, model, X)
    layers = fw.inspect(model, input_shape=SHAPE)
    ranks = {l.name: l.out_channels for l in layers if l.kernel == (3, 3) and not l.role.is_stem}
    plan = fw.plan(model, input_shape=SHAPE, mode=None, rank_selection="manual", ranks=ranks, conv_method="basis",
                   basis_init="qr", skip_unreduced=False)
    fw.compress(model, plan)
    assert rel(forward(fw, model, X), ref) <= 2e-5


@pytest.mark.parametrize("key", NEW_CHAINS)
def test_save_load_convert_and_graph_mode(lrd_torch, lrd_mindspore, key, tmp_path):
    import mindspore as ms

    for src, dst in ((lrd_torch, lrd_mindspore), (lrd_mindspore, lrd_torch)):
        model = small(src)
        plan = make_plan(src, model, key)
        src.compress(model, plan)
        ref = forward(src, model, X)
        directory = str(tmp_path / f"{src.FRAMEWORK}_{key}")
        src.save(model, plan, directory)
        again = src.load(directory, src.models.resnet18(num_classes=10, stem="cifar", width=8))
        np.testing.assert_array_equal(forward(src, again, X), ref)
        other = dst.load(directory, dst.models.resnet18(num_classes=10, stem="cifar", width=8))
        assert rel(forward(dst, other, X), ref) <= 1e-5
        if src is lrd_mindspore:
            ms.set_context(mode=ms.GRAPH_MODE)
            try:
                graph = forward(src, model, X)
            finally:
                ms.set_context(mode=ms.PYNATIVE_MODE)
            assert rel(graph, ref) <= 1e-6


@pytest.mark.parametrize("key", NEW_CHAINS)
def test_export_of_every_new_chain_reloads_and_matches(fw, key, tmp_path):
    model = small(fw)
    fw.compress(model, make_plan(fw, model, key))
    for fmt in fw.BACKEND.export_formats:                   # torch: ONNX; MindSpore: MINDIR and ONNX
        report = fw.export(model, str(tmp_path / f"m.{fmt.lower()}"), input_shape=(2,) + SHAPE[1:], format=fmt,
                           dynamic_batch=True)
        assert report["checked_batches"] == [1, 2, 3]
        assert report["max_abs_diff"] <= 1e-5 * max(1.0, float(np.abs(forward(fw, model, X)).max()))


def test_freezing_knows_the_new_positions(fw):
    model = small(fw)
    plan = fw.plan(model, input_shape=SHAPE, mode=None, include=["layer1.0.conv1"], conv_method="cp4",
                   cp_iters=10)
    plan_b = fw.plan(model, input_shape=SHAPE, mode=None, include=["layer2.0.conv1"], conv_method="basis",
                     basis_alpha=0.5, basis_beta=0.5)
    both = Plan(plan.config, [a if a.decomposed else b for a, b in zip(plan.layers, plan_b.layers)])
    fw.compress(model, both)
    cp, ab = "layer1.0.conv1.", "layer2.0.conv1."
    trained = {0: [cp + "0.weight", ab + "0.weight"], 1: [cp + "1.weight", cp + "2.weight", ab + "1.weight",
                                                          ab + "1.bias"],
               2: [cp + "3.weight", ab + "0.weight"]}
    factors = {cp + f"{i}.weight" for i in range(4)} | {ab + "0.weight", ab + "1.weight"}
    if (ab + "1.bias") in fw.state_to_numpy(model):
        factors.add(ab + "1.bias")
    for phase, names in trained.items():
        frozen = set(fw.freeze_phase(model, both, "sequential", phase))
        assert frozen == factors - set(names), phase
        assert set(fw.frozen_names(model)) == frozen
    assert ab + "1.index" in fw.state_to_numpy(model)
    assert ab + "1.index" not in fw.BACKEND.parameters(model)            # a buffer: never trained or frozen
    fw.unfreeze(model)


def test_multistage_shrinks_cp_chains(fw):
    model = small(fw)
    plan = make_plan(fw, model, "cp3_epc")
    fw.compress(model, plan)
    before = fw.multistage.read_chains(model, plan)
    new, changed = fw.multistage.compress_stage(model, plan, StageConfig(rank_selection="vbmf"), 2)
    assert changed and all(new[n].ranks[0] < plan[n].ranks[0] for n in changed)
    after = fw.multistage.read_chains(model, new)
    for name in changed:
        want, report = cp_redecompose(before[name], new[name].ranks[0], epc=True, n_iter=15, epc_iter=10)
        assert new[name].cp == report
        for got, ref in zip(after[name], want):
            np.testing.assert_allclose(got.weight, ref.weight, rtol=1e-5, atol=1e-6)
    assert new.totals["params_after"] < plan.totals["params_after"]
