"""inspect / plan / compress / rebuild / save / load run the same cases in torch and MindSpore."""
import os

import numpy as np
import pytest

from lrd_core import Plan, make_plan
from lrd_core.errors import MismatchError
from lrd_core.naming import is_num_batches
from tests.conftest import forward, perturb_bn
from tests.core.resnet_infos import resnet_infos

RNG = np.random.default_rng(0)
X32 = RNG.standard_normal((2, 3, 32, 32)).astype(np.float32)
X64 = RNG.standard_normal((2, 3, 64, 64)).astype(np.float32)


def full_rank_plan(layers):
    ranks = {l.name: (l.out_channels, l.in_channels) if l.kernel != (1, 1) else min(l.out_channels, l.in_channels)
             for l in layers if l.groups == 1}
    return make_plan(layers, mode=None, rank_selection="manual", ranks=ranks, skip_unreduced=False)


def test_inspect_resnet50_roles_and_sizes(fw):
    model = fw.models.resnet50(seed=0)
    got = fw.inspect(model, input_shape=(1, 3, 224, 224))
    want = resnet_infos(50, 224)
    assert [l.name for l in got] == [l.name for l in want]
    for g, w in zip(got, want):
        assert g == w, g.name
    assert got[-1].role.is_final_dense and got[0].role.is_stem


@pytest.mark.parametrize("name,x,stem", [("resnet18", X32, "cifar"), ("resnet50", X64, "imagenet")])
def test_full_rank_decomposition_reproduces_the_network(fw, name, x, stem):
    model = fw.models.create_model(name, num_classes=10, stem=stem, seed=1)
    fw.load_numpy(model, perturb_bn(fw.state_to_numpy(model)))
    ref = forward(fw, model, x)
    plan = full_rank_plan(fw.inspect(model, input_shape=(1,) + x.shape[1:]))
    assert len(plan.decomposed()) == len(plan.layers)
    fw.compress(model, plan)
    out = forward(fw, model, x)
    assert np.abs(out - ref).max() <= 2e-5 * max(1.0, np.abs(ref).max())
    n_convs = sum(1 for _ in fw.inspect(model, input_shape=(1,) + x.shape[1:]))
    assert n_convs == sum(3 if lp.method == "tucker2" else 2 for lp in plan.layers)


def test_plans_are_identical_across_frameworks(lrd_torch, lrd_mindspore):
    kw = dict(input_shape=(1, 3, 224, 224), mode="mode3", rank_selection="pr", ratio=3.0, final_dense_ratio=1.3,
              rank_multiple=32)
    a = lrd_torch.plan(lrd_torch.models.resnet50(seed=0), **kw).to_dict()
    b = lrd_mindspore.plan(lrd_mindspore.models.resnet50(seed=0), **kw).to_dict()
    a["meta"].pop("framework"), b["meta"].pop("framework")
    assert a == b


def test_compressed_resnet50_same_outputs_in_both_frameworks(lrd_torch, lrd_mindspore):
    """Tolerance reached: ~1e-6 relative to the logits' scale (float32, different kernels)."""
    t_model = lrd_torch.models.resnet50(num_classes=100, seed=3)
    weights = perturb_bn(lrd_torch.state_to_numpy(t_model), seed=3)
    lrd_torch.load_numpy(t_model, weights)
    m_model = lrd_mindspore.models.resnet50(num_classes=100)
    lrd_mindspore.load_numpy(m_model, weights)
    plan = lrd_torch.plan(t_model, input_shape=(1, 3, 64, 64), mode="mode3", ratio=3.0, final_dense_ratio=1.3,
                          rank_multiple=32)
    lrd_torch.compress(t_model, plan)
    lrd_mindspore.compress(m_model, plan)
    a, b = forward(lrd_torch, t_model, X64), forward(lrd_mindspore, m_model, X64)
    scale = np.abs(a).max()
    assert scale > 1.0
    assert np.abs(a - b).max() <= 1e-5 * scale
    ta, ma = lrd_torch.state_to_numpy(t_model), lrd_mindspore.state_to_numpy(m_model)
    assert {k for k in ta if not is_num_batches(k)} == set(ma)
    for k, v in ma.items():
        np.testing.assert_allclose(v, ta[k], rtol=1e-6, atol=1e-7)


def test_save_rebuild_load_is_exact(fw, tmp_path):
    model = fw.models.resnet18(num_classes=10, stem="cifar", width=16, seed=4)
    plan = fw.plan(model, input_shape=(1, 3, 32, 32), mode="vanilla", ratio=2.0, rank_multiple=8)
    fw.compress(model, plan)
    fw.load_numpy(model, perturb_bn(fw.state_to_numpy(model)))
    ref = forward(fw, model, X32)
    fw.save(model, plan, str(tmp_path / "c"))
    assert sorted(os.listdir(tmp_path / "c")) == sorted(["plan.json", "model.ckpt" if fw.FRAMEWORK == "mindspore"
                                                          else "model.pt"])
    again = fw.load(str(tmp_path / "c"), fw.models.resnet18(num_classes=10, stem="cifar", width=16))
    assert np.array_equal(forward(fw, again, X32), ref)
    assert Plan.from_json(str(tmp_path / "c" / "plan.json")).to_dict()["layers"] == plan.to_dict()["layers"]


def test_compressed_checkpoint_loads_in_the_other_framework(lrd_torch, lrd_mindspore, tmp_path):
    for src, dst in ((lrd_torch, lrd_mindspore), (lrd_mindspore, lrd_torch)):
        model = src.models.resnet18(num_classes=10, stem="cifar", width=16, seed=5)
        plan = src.plan(model, input_shape=(1, 3, 32, 32), mode="mode1", ratio=2.0, rank_multiple=8)
        src.compress(model, plan)
        ref = forward(src, model, X32)
        src.save(model, plan, str(tmp_path / src.FRAMEWORK))
        twin = dst.load(str(tmp_path / src.FRAMEWORK), dst.models.resnet18(num_classes=10, stem="cifar", width=16))
        assert np.abs(forward(dst, twin, X32) - ref).max() <= 1e-5 * max(1.0, np.abs(ref).max())


def test_mindspore_checkpoint_keeps_every_parameter(lrd_mindspore, tmp_path):
    import mindspore as ms
    model = lrd_mindspore.models.resnet50(seed=0)
    plan = lrd_mindspore.plan(model, input_shape=(1, 3, 64, 64), mode="vanilla", ratio=3.0, rank_multiple=32)
    lrd_mindspore.compress(model, plan)
    lrd_mindspore.save(model, plan, str(tmp_path / "c"))
    saved = ms.load_checkpoint(str(tmp_path / "c" / "model.ckpt"))
    names = [p.name for p in model.get_parameters()]
    assert len(set(names)) == len(names) == len(saved) == len(model.parameters_dict())
    assert set(saved) == set(names)
    # one weight per conv of every factor chain (none: 1, svd: 2, tucker2: 3), the fc bias, 4 per BatchNorm
    n_weights = sum({"none": 1, "svd": 2, "tucker2": 3}[lp.method] for lp in plan.layers)
    expected = n_weights + 1 + 53 * 4
    assert len(saved) == expected


def test_graph_mode_sees_the_swap(lrd_mindspore):
    """A net compiled in GRAPH mode before compress must run the new layers after it."""
    import mindspore as ms
    model = lrd_mindspore.models.resnet18(num_classes=10, stem="cifar", width=8, seed=6)
    ms.set_context(mode=ms.GRAPH_MODE)
    try:
        before = forward(lrd_mindspore, model, X32)
        plan = lrd_mindspore.plan(model, input_shape=(1, 3, 32, 32), mode="vanilla", rank_selection="manual",
                                  ranks={"layer1.0.conv1": 2})
        lrd_mindspore.compress(model, plan)
        after_graph = forward(lrd_mindspore, model, X32)
        ms.set_context(mode=ms.PYNATIVE_MODE)
        after_pynative = forward(lrd_mindspore, model, X32)
    finally:
        ms.set_context(mode=ms.PYNATIVE_MODE)
    assert np.abs(after_graph - before).max() > 1e-4
    np.testing.assert_allclose(after_graph, after_pynative, rtol=1e-5, atol=1e-6)


def test_plan_for_another_model_is_refused(fw):
    small = fw.models.resnet18(num_classes=10, stem="cifar", width=16)
    plan = fw.plan(small, input_shape=(1, 3, 32, 32), mode="vanilla", ratio=2.0)
    other = fw.models.resnet18(num_classes=10, stem="cifar", width=32)
    with pytest.raises(MismatchError, match="layer"):
        fw.compress(other, plan)
    fw.compress(small, plan)
    with pytest.raises(MismatchError, match="already compressed"):
        fw.compress(small, plan)


def test_multistage_style_reinspect_lists_factor_layers(fw):
    model = fw.models.resnet18(num_classes=10, stem="cifar", width=16, seed=7)
    plan = fw.plan(model, input_shape=(1, 3, 32, 32), mode="mode1", ratio=2.0)
    fw.compress(model, plan)
    names = [l.name for l in fw.inspect(model, input_shape=(1, 3, 32, 32))]
    assert "layer2.0.conv1.1" in names and "fc.0" in names and "fc.1" in names
    roles = {l.name: l.role for l in fw.inspect(model, input_shape=(1, 3, 32, 32))}
    assert roles["layer2.0.conv1.1"].stage == 2 and roles["fc.1"].is_final_dense
