"""The `lrd` command: inspect / plan / compress / convert and its bad-input contract."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from lrd_cli.main import main
from tests.cli.conftest import run

SMALL = ["--model", "resnet18", "--stem", "cifar", "--num-classes", "10", "--width", "16", "--input-size", "32"]


def test_inspect_counts_resnet50_modes(framework, capsys):
    code, out, _ = run(["inspect", "--framework", framework, "--model", "resnet50", "--input-size", "64"], capsys)
    assert code == 0
    last = out.strip().splitlines()[-1].split()
    assert last[-6:] == ["53", "17", "51", "45", "49", "37"]        # vanilla, mode1..mode5
    assert "layer4.2.conv3" in out and "final dense" in out and "stem" in out


def test_plan_compress_round_trip(framework, tmp_path, capsys):
    plan_path, out_dir = tmp_path / "plan.json", tmp_path / "c"
    code, out, _ = run(["plan", "--framework", framework, *SMALL, "--mode", "mode3", "--rank-selection", "pr",
                        "--ratio", "2", "--final-dense-ratio", "1.3", "--rank-multiple", "8",
                        "--out", str(plan_path)], capsys)
    assert code == 0 and "TOTAL" in out
    plan = json.loads(plan_path.read_text())
    assert plan["config"]["mode"] == "mode3" and plan["totals"]["params_after"] < plan["totals"]["params_before"]
    code, out, err = run(["compress", "--framework", framework, *SMALL, "--plan", str(plan_path),
                          "--out", str(out_dir)], capsys)
    assert code == 0 and "decomposed 18 layers" in out and "layer1.0.conv1" in out
    assert "layer1.0.conv1" not in err                  # the per-layer progress bar stays quiet off a terminal
    weights = "model.ckpt" if framework == "mindspore" else "model.pt"
    assert sorted(os.listdir(out_dir)) == sorted(["plan.json", weights])
    # the directory reloads in the other framework with the same parameters
    other = "torch" if framework == "mindspore" else "mindspore"
    import importlib
    src, dst = importlib.import_module("lrd_" + framework), importlib.import_module("lrd_" + other)
    kw = dict(num_classes=10, stem="cifar", width=16)
    a = src.state_to_numpy(src.load(str(out_dir), src.models.resnet18(**kw)))
    b = dst.state_to_numpy(dst.load(str(out_dir), dst.models.resnet18(**kw)))
    common = set(a) & set(b)
    assert len(common) >= len(a) - 21 and len(common) >= len(b) - 21     # only num_batches_tracked differ
    for k in common:
        assert np.array_equal(a[k], b[k]), k


def test_vbmf_plan_from_checkpoint_and_convert(tmp_path, capsys):
    import lrd_torch
    model = lrd_torch.models.resnet18(num_classes=10, stem="cifar", width=16, seed=0)
    pt = tmp_path / "m.pt"
    lrd_torch.write_checkpoint(lrd_torch.state_to_numpy(model), str(pt))
    ckpt = tmp_path / "m.ckpt"
    code, _, _ = run(["convert", "--src", str(pt), "--out", str(ckpt)], capsys)
    assert code == 0 and ckpt.exists()
    code, out, _ = run(["plan", *SMALL, "--checkpoint", str(ckpt), "--mode", "vanilla", "--rank-selection", "vbmf",
                        "--vbmf-weakening", "0.5", "--rank-multiple", "1", "--out", str(tmp_path / "p.json")], capsys)
    assert code == 0
    plan = json.loads((tmp_path / "p.json").read_text())
    assert plan["config"]["rank_selection"] == "vbmf"
    # random-init weights: EVBMF finds no structure, weakening 0.5 -> half the full rank, e.g. 16x16 -> 8x8
    assert plan["layers"][1]["ranks"] == [8, 8]


BAD = [
    (["plan", "--model", "resnet99", "--out", "{tmp}/p.json"], "resnet99"),
    (["plan", *SMALL, "--ratio", "1", "--out", "{tmp}/p.json"], "ratio"),
    (["plan", *SMALL, "--ratio", "0.5", "--out", "{tmp}/p.json"], "ratio"),
    (["plan", *SMALL, "--include", "layer9.0.conv1", "--out", "{tmp}/p.json"], "layer9.0.conv1"),
    (["plan", *SMALL, "--rank-selection", "manual", "--rank", "layer1.0.conv1=64", "--out", "{tmp}/p.json"],
     "layer1.0.conv1"),
    (["plan", *SMALL, "--checkpoint", "{tmp}/wrong.pt", "--out", "{tmp}/p.json"], "wrong.pt does not fit"),
    (["plan", *SMALL, "--checkpoint", "{tmp}/nan.pt", "--out", "{tmp}/p.json"], "NaN"),
    (["plan", *SMALL, "--checkpoint", "{tmp}/missing.pt", "--out", "{tmp}/p.json"], "missing.pt"),
    (["compress", *SMALL, "--plan", "{tmp}/nope.json", "--out", "{tmp}/c"], "nope.json"),
    (["compress", "--model", "resnet34", "--stem", "cifar", "--num-classes", "10", "--width", "16",
      "--plan", "{tmp}/good.json", "--out", "{tmp}/c"], "layer"),
]


@pytest.fixture
def bad_files(tmp_path):
    import lrd_torch
    wrong = lrd_torch.models.resnet18(num_classes=10, stem="cifar", width=32)
    lrd_torch.write_checkpoint(lrd_torch.state_to_numpy(wrong), str(tmp_path / "wrong.pt"))
    m = lrd_torch.models.resnet18(num_classes=10, stem="cifar", width=16)
    arrays = lrd_torch.state_to_numpy(m)
    arrays["layer2.0.conv2.weight"][0, 0, 0, 0] = np.nan
    lrd_torch.write_checkpoint(arrays, str(tmp_path / "nan.pt"))
    assert main(["plan", "--framework", "torch", *SMALL, "--mode", "vanilla", "--out", str(tmp_path / "good.json")]) == 0
    return tmp_path


@pytest.mark.parametrize("argv,needle", BAD)
def test_bad_input_one_line_error_and_no_output(framework, bad_files, argv, needle, capsys):
    capsys.readouterr()
    before = set(os.listdir(bad_files))
    argv = [a.replace("{tmp}", str(bad_files)) for a in argv]
    argv = argv[:1] + ["--framework", framework] + argv[1:]
    code, out, err = run(argv, capsys)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0] and "Traceback" not in err, err
    assert set(os.listdir(bad_files)) == before          # nothing written, not even a temp file


def test_subprocess_exit_code_and_stderr(tmp_path):
    env = dict(os.environ, GLOG_v="3")
    proc = subprocess.run([sys.executable, "-m", "lrd_cli.main", "plan", "--framework", "torch", *SMALL,
                           "--ratio", "0.9", "--out", str(tmp_path / "p.json")], capture_output=True, text=True,
                          env=env, timeout=300)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "ratio" in proc.stderr
    assert not (tmp_path / "p.json").exists()


@pytest.mark.parametrize("argv,needle", [
    (["plan", *SMALL, "--mode", "mode7", "--out", "{tmp}/p.json"], "invalid choice: 'mode7'"),
    (["plan", *SMALL, "--mode", "vanilla"], "--out"),
    (["bench", "model", "--model", "resnet18", "--device", "TPU", "--out", "{tmp}/r.json"], "unknown device"),
    (["plan", "--model", "resnet18", "--input-size", "0", "--out", "{tmp}/p.json"], "--input-size 0"),
])
def test_usage_errors_are_one_line_too(tmp_path, argv, needle, capsys):
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    with pytest.raises(SystemExit) as exc:
        code = main(argv)
        raise SystemExit(code)
    err = capsys.readouterr().err
    assert exc.value.code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0] and lines[0].startswith("lrd "), err
    assert os.listdir(tmp_path) == []
