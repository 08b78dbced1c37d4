"""What the adapters record: in-place and invisible merges, and everything restored after an error."""
import numpy as np
import pytest

from lrd_core.layers import Role


def _expected_roles(names):
    stem, a1, a2, b1, b2, proj, fc = names
    return {stem: Role(num_stages=2, is_stem=True), a1: Role(stage=1, num_stages=2),
            a2: Role(stage=1, num_stages=2), b1: Role(stage=2, num_stages=2), b2: Role(stage=2, num_stages=2),
            proj: Role(stage=2, num_stages=2, is_downsample=True), fc: Role(num_stages=2, is_final_dense=True)}


def test_torch_in_place_residuals():
    """torchvision style: ``out += identity`` and ``ReLU(inplace=True)`` write the same tensor again."""
    from torch import nn

    import lrd_torch

    class Block(nn.Module):
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.c1 = nn.Conv2d(cin, cout, 3, stride, 1)
            self.c2 = nn.Conv2d(cout, cout, 3, 1, 1)
            self.act = nn.ReLU(inplace=True)
            self.skip = nn.Conv2d(cin, cout, 1, stride) if stride > 1 else None

        def forward(self, x):
            identity = x if self.skip is None else self.skip(x)
            out = self.c2(self.act(self.c1(x)))
            out += identity
            return self.act(out)

    model = nn.Sequential(nn.Conv2d(3, 8, 3, 1, 1), nn.ReLU(inplace=True), Block(8, 8, 1), Block(8, 16, 2),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10))
    roles = {l.name: l.role for l in lrd_torch.inspect(model, input_shape=(1, 3, 16, 16))}
    assert roles == _expected_roles(["0", "2.c1", "2.c2", "3.c1", "3.c2", "3.skip", "6"])


def test_mindspore_merge_it_cannot_see_is_bridged_from_the_cell():
    """A block adding through a function bound before the recorder wrapped ``ops.add``: the add is
    invisible, the block's cell shows where it must be."""
    import mindspore as ms
    from mindspore import nn, ops
    from mindspore.ops import add as bound_add

    import lrd_mindspore

    class Block(nn.Cell):
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.c1 = nn.Conv2d(cin, cout, 3, stride, pad_mode="pad", padding=1)
            self.c2 = nn.Conv2d(cout, cout, 3, 1, pad_mode="pad", padding=1)
            self.has_skip = stride > 1
            self.skip = nn.Conv2d(cin, cout, 1, stride) if self.has_skip else None

        def construct(self, x):
            identity = self.skip(x) if self.has_skip else x
            return ops.relu(bound_add(self.c2(ops.relu(self.c1(x))), identity))

    class Net(nn.Cell):
        def __init__(self):
            super().__init__()
            self.stem = nn.Conv2d(3, 8, 3, pad_mode="pad", padding=1)
            self.b1, self.b2 = Block(8, 8, 1), Block(8, 16, 2)
            self.fc = nn.Dense(16, 10)

        def construct(self, x):
            return self.fc(ops.mean(self.b2(self.b1(ops.relu(self.stem(x)))), (2, 3)))

    ms.set_context(mode=ms.PYNATIVE_MODE)
    roles = {l.name: l.role for l in lrd_mindspore.inspect(Net(), input_shape=(1, 3, 16, 16))}
    assert roles == _expected_roles(["stem", "b1.c1", "b1.c2", "b2.c1", "b2.c2", "b2.skip", "fc"])


def _failing_torch():
    from torch import nn

    class Broken(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = nn.Sequential(nn.Conv2d(3, 4, 1), nn.ReLU())

        def forward(self, x):
            y = self.body(x) + x.mean()
            raise RuntimeError(f"broken forward {tuple(y.shape)}")

    return Broken()


def _failing_mindspore():
    from mindspore import nn

    class Broken(nn.Cell):
        def __init__(self):
            super().__init__()
            self.body = nn.SequentialCell([nn.Conv2d(3, 4, 1), nn.ReLU()])

        def construct(self, x):
            y = self.body(x) + x.mean()
            raise RuntimeError(f"broken forward {tuple(y.shape)}")

    return Broken()


def test_torch_restores_hooks_mode_and_train_flag_after_an_error():
    import torch

    import lrd_torch
    model = _failing_torch().train()
    with pytest.raises(RuntimeError, match="broken forward"):
        lrd_torch.inspect(model, input_shape=(1, 3, 8, 8))
    assert model.training and torch._C._len_torch_function_stack() == 0
    for m in model.modules():
        assert not m._forward_hooks and not m._forward_pre_hooks
    assert np.array_equal((torch.ones(2) + torch.ones(2)).numpy(), [2.0, 2.0])


def test_mindspore_restores_wrapped_ops_hooks_mode_and_train_flag_after_an_error():
    import mindspore as ms
    from mindspore import mint, ops

    import lrd_mindspore
    def snapshot():
        methods = ("__add__", "__radd__", "__iadd__", "__mul__", "__getitem__", "reshape", "mean")
        return ({f"{cls.__name__}.{k}": cls.__dict__.get(k) for cls in (ms.Tensor, ms.Parameter) for k in methods},
                [ops.add, ops.concat, ops.reshape, mint.cat, ops.Add.__call__, ops.ReduceMean.__call__])

    before = snapshot()
    model = _failing_mindspore()
    model.set_train(True)
    ms.set_context(mode=ms.GRAPH_MODE)
    try:
        with pytest.raises(RuntimeError, match="broken forward"):
            lrd_mindspore.inspect(model, input_shape=(1, 3, 8, 8))
        assert ms.get_context("mode") == ms.GRAPH_MODE
    finally:
        ms.set_context(mode=ms.PYNATIVE_MODE)
    assert model.training
    assert snapshot() == before
    for _, cell in model.cells_and_names():
        assert not cell._forward_hook and not cell._forward_pre_hook
    assert (ms.Tensor(np.ones(2, np.float32)) + 1).asnumpy().tolist() == [2.0, 2.0]
