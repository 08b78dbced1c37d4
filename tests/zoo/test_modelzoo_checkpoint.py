"""A ResNet-50 under MindSpore ModelZoo names (``down_sample_layer``, ``end_point``): its checkpoint loads,
it plans with the paper's mode counts and compresses (both frameworks)."""
import numpy as np

from tests.parity.test_naming_schemes import BUILDERS, COUNTS


def test_modelzoo_named_resnet50_checkpoint_plans_and_compresses(fw, tmp_path):
    trained, ours = BUILDERS[fw.FRAMEWORK](50, "modelzoo")
    state = fw.state_to_numpy(trained)
    assert "layer1.0.down_sample_layer.0.weight" in state and "end_point.weight" in state
    ckpt = tmp_path / ("resnet50_modelzoo.ckpt" if fw.FRAMEWORK == "mindspore" else "resnet50_modelzoo.pt")
    fw.write_checkpoint(state, str(ckpt))

    model, _ = BUILDERS[fw.FRAMEWORK](50, "modelzoo")                       # fresh weights, then the file
    fw.load_checkpoint(model, str(ckpt))
    loaded = fw.state_to_numpy(model)
    assert all(np.array_equal(loaded[k], state[k]) for k in state)

    shape = (1, 3, 64, 64)
    for mode in ("vanilla", "mode1", "mode3"):
        plan = fw.plan(model, input_shape=shape, mode=mode, rank_multiple=1)
        assert sum(lp.selected for lp in plan.layers) == COUNTS[50][mode]
    assert plan["layer2.0.down_sample_layer.0"].decomposed and plan["end_point"].decomposed and not plan["conv1"].selected
    compressed = fw.compress(model, plan)
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    out = fw.predict(compressed, x)
    assert out.shape == (1, 10) and np.all(np.isfinite(out))
    names = {n for n, _ in fw.BACKEND.named_layers(compressed)}
    assert {"layer2.0.down_sample_layer.0.0", "end_point.0", "end_point.1"} <= names
