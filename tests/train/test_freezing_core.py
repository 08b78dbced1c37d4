"""Phase logic of factor freezing (framework-neutral)."""
import pytest

from lrd_core import freezing
from lrd_core.errors import ConfigError
from lrd_core.freezing import FreezeConfig
from lrd_core.layers import LayerInfo, Role
from lrd_core.planner import make_plan

LAYERS = [LayerInfo("a", "conv2d", 16, 16, (3, 3), padding=(1, 1, 1, 1), input_hw=(8, 8), role=Role(stage=1)),
          LayerInfo("b", "conv2d", 16, 32, (1, 1), input_hw=(8, 8), role=Role(stage=1)),
          LayerInfo("fc", "dense", 32, 10, has_bias=True, role=Role(is_final_dense=True))]


@pytest.fixture(scope="module")
def plan():
    return make_plan(LAYERS, mode="all", rank_selection="manual", ranks={"a": (8, 8), "b": 8, "fc": 4})


def test_factor_parameters_name_every_factor(plan):
    assert freezing.factor_parameters(plan) == {
        "a.0.weight": ("a", "first"), "a.1.weight": ("a", "core"), "a.2.weight": ("a", "last"),
        "b.0.weight": ("b", "first"), "b.1.weight": ("b", "last"),
        "fc.0.weight": ("fc", "first"), "fc.1.weight": ("fc", "last"), "fc.1.bias": ("fc", "last")}


def test_sequential_trains_one_position_per_layer_and_cycles(plan):
    cfg = FreezeConfig("sequential")
    expected = [{"a": ["first"], "b": ["first"], "fc": ["first"]},
                {"a": ["core"], "b": ["last"], "fc": ["last"]},
                {"a": ["last"], "b": ["first"], "fc": ["first"]},
                {"a": ["first"], "b": ["last"], "fc": ["last"]}]
    for k, want in enumerate(expected):
        assert freezing.trainable_positions(plan, cfg, k) == want
    assert freezing.cycle_length(plan, cfg) == 6
    assert freezing.frozen_parameters(plan, cfg, 1) == {"a.0.weight", "a.2.weight", "b.0.weight", "fc.0.weight"}
    assert freezing.frozen_parameters(plan, cfg, 0) == freezing.frozen_parameters(plan, cfg, 6)


def test_order_changes_the_cycle(plan):
    cfg = FreezeConfig("sequential", order=("last", "first", "core"))
    assert freezing.trainable_positions(plan, cfg, 0) == {"a": ["last"], "b": ["last"], "fc": ["last"]}
    assert freezing.trainable_positions(plan, cfg, 2) == {"a": ["core"], "b": ["last"], "fc": ["last"]}


@pytest.mark.parametrize("unit, every, epoch, step, phase", [("epoch", 1, 3, 99, 3), ("epoch", 2, 3, 99, 1),
                                                             ("step", 5, 3, 12, 2), ("step", 1, 0, 7, 7)])
def test_phase_index_units(unit, every, epoch, step, phase):
    assert freezing.phase_index(FreezeConfig("sequential", every=every, unit=unit), epoch, step) == phase


def test_regular_and_none(plan):
    assert freezing.frozen_parameters(plan, "none", 3) == frozenset()
    regular = FreezeConfig("regular", frozen=("first",))
    for k in range(3):
        assert freezing.frozen_parameters(plan, regular, k) == {"a.0.weight", "b.0.weight", "fc.0.weight"}
    assert freezing.phase_index(regular, 5, 50) == 0


@pytest.mark.parametrize("kwargs, words", [({"policy": "sometimes"}, "unknown freeze policy"),
                                           ({"policy": "sequential", "every": 0}, "positive integer"),
                                           ({"policy": "sequential", "unit": "batch"}, "epoch' or 'step"),
                                           ({"policy": "regular", "frozen": ("middle",)}, "positions"),
                                           ({"policy": "sequential", "order": ()}, "positions")])
def test_bad_freeze_options(kwargs, words):
    with pytest.raises(ConfigError, match=words):
        FreezeConfig(**kwargs)
    with pytest.raises(ConfigError, match="unknown freeze option"):
        FreezeConfig.from_dict({"policy": "none", "cycle": 2})
