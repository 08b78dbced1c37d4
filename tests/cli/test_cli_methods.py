"""`lrd plan --conv-method cp3|cp4|basis [--epc] [--basis-*]`, `lrd compress` of such a plan, and their bad inputs."""
import json
import os

import pytest

from lrd_cli.main import main
from tests.conftest import FRAMEWORKS

SMALL = ["--model", "resnet18", "--stem", "cifar", "--num-classes", "10", "--width", "8", "--input-size", "32"]
ONE = ["--mode", "mode1", "--exclude", "fc", "--exclude", "layer[34].*"]       # the 8 KxK convs of stages 1-2


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_plan_and_compress_with_cp_epc(framework, tmp_path, capsys):
    plan_path = tmp_path / "plan.json"
    assert main(["plan", "--framework", framework, *SMALL, *ONE, "--conv-method", "cp3", "--epc", "--cp-iters", "20",
                 "--epc-iters", "10", "--out", str(plan_path)]) == 0
    out = capsys.readouterr().out
    assert "cp3" in out and "TOTAL" in out
    d = json.loads(plan_path.read_text())
    layers = [x for x in d["layers"] if x["method"] != "none"]
    assert len(layers) == 8 and {x["method"] for x in layers} == {"cp3"}
    for x in layers:
        (e0, e1), (s0, s1) = x["cp"]["error"], x["cp"]["sensitivity"]
        assert e1 <= e0 * (1 + 1e-9) and s1 < s0
    assert d["config"]["conv_method"] == "cp3" and d["config"]["epc"] is True
    assert main(["compress", "--framework", framework, *SMALL, "--plan", str(plan_path),
                 "--out", str(tmp_path / "c")]) == 0
    assert "plan.json" in os.listdir(tmp_path / "c")


def test_basis_alpha_beta_options_reach_the_plan(tmp_path, capsys):
    plan_path = tmp_path / "plan.json"
    assert main(["plan", "--framework", "torch", *SMALL, *ONE, "--conv-method", "basis", "--basis-alpha", "0.5",
                 "--basis-beta", "0.25", "--basis-speedup", "--out", str(plan_path)]) == 0
    d = json.loads(plan_path.read_text())
    ranks = {x["name"]: x["ranks"] for x in d["layers"] if x["method"] == "basis"}
    assert ranks["layer1.0.conv1"] == [4, 2] and ranks["layer2.1.conv2"] == [8, 4]    # Cout 8 and 16
    assert (d["config"]["basis_alpha"], d["config"]["basis_beta"], d["config"]["basis_speedup"]) == (0.5, 0.25, True)


@pytest.mark.parametrize("argv,needle", [
    (["--conv-method", "cp3", "--rank-selection", "manual", "--rank", "layer1.0.conv1=0"], "must be >= 1"),
    (["--conv-method", "cp4", "--rank-selection", "manual", "--rank", "layer1.0.conv1=500"], "outside [1, 26]"),
    (["--conv-method", "basis", "--rank-selection", "manual", "--rank", "layer1.0.conv1=9"], "[1, 8] (Cout)"),
    (["--conv-method", "basis", "--basis-alpha", "1.5", "--basis-beta", "0.2"], "basis_alpha must be in (0, 1]"),
    (["--conv-method", "basis", "--basis-alpha", "0.5", "--basis-beta", "0.5", "--basis-speedup"],
     "alpha + beta < 1"),
    (["--conv-method", "cp3", "--basis-alpha", "0.5", "--basis-beta", "0.2"], "conv_method='basis'"),
])
def test_bad_method_input_one_line_and_nothing_written(tmp_path, argv, needle, capsys):
    code = main(["plan", "--framework", "torch", *SMALL, "--mode", "vanilla", *argv, "--out",
                 str(tmp_path / "p.json")])
    err = capsys.readouterr().err
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0] and "Traceback" not in err, err
    assert os.listdir(tmp_path) == []

