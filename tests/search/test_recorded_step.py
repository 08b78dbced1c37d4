"""auto records the rank step it searched, names layers by name ([k/N]) in its log lines, and gives
--exclude as the reason of an excluded layer."""
from dataclasses import replace

from lrd_core.layers import LayerInfo, Role
from lrd_core.profile import Profiler, table_timer
from lrd_core.search import search_plan

A = LayerInfo("layer3.0.conv2", "conv2d", 64, 64, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 1, False, (8, 8),
              Role(stage=3))
B = replace(A, name="layer4.0.conv2", role=Role(stage=4), input_hw=(4, 4))


class AllFast(dict):
    """Every variant at 1 ms except the original at 2 ms (every decomposition is faster)."""

    def get(self, key, default=None):
        return 2.0 if key[1] == "original" else 1.0


def test_rank_step_log_names_and_exclude_reason():
    lines = []
    options = dict(mode="auto", ratio=2.0, rank_multiple=1, exclude=["layer4"], verify=False, objective="infer")
    plan = search_plan([A, B], options, Profiler(table_timer(AllFast()), log=lines.append), log=lines.append)
    auto = plan.meta["auto"]
    assert auto["rank_step"] == 8 and plan.config.rank_multiple == 1
    assert plan["layer4.0.conv2"].reason == "excluded by exclude 'layer4'"
    assert plan["layer3.0.conv2"].decomposed and all(r % 8 == 0 for r in plan["layer3.0.conv2"].ranks)
    timed = [l for l in lines if "ms |" in l]
    assert timed and all("[1/1] layer3.0.conv2" in l for l in timed)
    plan16 = search_plan([A], dict(options, rank_multiple=16, exclude=[]), Profiler(table_timer(AllFast())))
    assert plan16.meta["auto"]["rank_step"] == 16
