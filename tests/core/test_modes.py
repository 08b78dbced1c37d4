"""Each mode selects exactly the layers of Table 1 (counted on ResNet-50 and ResNet-18)."""
import pytest

from lrd_core.modes import MODES
from tests.core.resnet_infos import resnet_infos


def chosen(mode, layers):
    return [l.name for l in layers if MODES[mode](l)]


# ResNet-50: 16 bottlenecks (48 convs: 32 1x1 + 16 3x3) + 4 downsample 1x1 + stem + fc.
@pytest.mark.parametrize("mode,count", [("vanilla", 53), ("mode1", 17), ("mode2", 51), ("mode3", 45),
                                        ("mode4", 49), ("mode5", 37), ("all", 54)])
def test_resnet50_mode_counts(mode, count):
    assert len(chosen(mode, resnet_infos(50))) == count


# ResNet-18: 16 3x3 convs in blocks + 3 downsample (blocks 2-4) + stem + fc.
@pytest.mark.parametrize("mode,count", [("vanilla", 20), ("mode1", 17), ("mode2", 18), ("mode3", 18),
                                        ("mode4", 17), ("mode5", 4), ("all", 21)])
def test_resnet18_mode_counts(mode, count):
    assert len(chosen(mode, resnet_infos(18))) == count


def test_resnet50_mode_membership():
    layers = resnet_infos(50)
    names = {m: set(chosen(m, layers)) for m in MODES}
    assert "conv1" not in names["vanilla"] and "conv1" in names["all"]
    assert "fc" in names["vanilla"] and "fc" in names["mode1"] and "fc" in names["mode5"]
    assert not any(n.endswith("conv1") or n.endswith("conv3") for n in names["mode1"] if n != "fc")
    assert {"layer3.0.downsample.0", "layer4.0.downsample.0"}.isdisjoint(names["mode2"])
    assert {"layer1.0.downsample.0", "layer2.0.downsample.0"} <= names["mode2"]
    assert not any(n.startswith("layer4") and not n.endswith("conv2") for n in names["mode3"])
    assert {"layer4.0.conv2", "layer4.2.conv2"} <= names["mode3"]
    assert not any("downsample" in n for n in names["mode4"])
    assert all(n == "fc" or n.endswith(("conv1", "conv3", "downsample.0")) for n in names["mode5"])
    assert names["mode3"] < names["mode2"] < names["vanilla"] and names["mode4"] < names["vanilla"]


# Three stages (3, 4, 6 bottlenecks): "blocks 3 and 4" of the paper are the last two stages, 2 and 3.
@pytest.mark.parametrize("mode,count", [("vanilla", 43), ("mode1", 14), ("mode2", 41), ("mode3", 29),
                                        ("mode4", 40), ("mode5", 30), ("all", 44)])
def test_modes_follow_the_stages_of_the_network(mode, count):
    layers = resnet_infos(50, counts=(3, 4, 6))
    assert len(chosen(mode, layers)) == count


def test_relative_stages_pick_the_last_ones():
    names = {m: set(chosen(m, resnet_infos(50, counts=(3, 4, 6)))) for m in ("mode2", "mode3")}
    assert "layer1.0.downsample.0" in names["mode2"]
    assert {"layer2.0.downsample.0", "layer3.0.downsample.0"}.isdisjoint(names["mode2"])
    assert "layer2.0.conv1" in names["mode3"] and "layer3.0.conv1" not in names["mode3"]
    assert "layer3.5.conv2" in names["mode3"]


def test_roles_without_a_stage_count_mean_the_papers_four():
    from lrd_core.layers import Role
    assert Role(stage=3).stage_from_end == 2 and Role(stage=3, num_stages=3).stage_from_end == 1
    assert Role().stage_from_end is None
