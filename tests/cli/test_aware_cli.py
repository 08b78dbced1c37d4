"""`lrd plan --calibration ... --data-aware`, `--rank-selection error`, `--mode pareto`, `lrd compress
--calibration` and their bad-input contract (one stderr line, exit 2, nothing written)."""
import json
import os

import numpy as np
import pytest

from tests.cli.conftest import run

SMALL = ["--model", "resnet18", "--stem", "cifar", "--num-classes", "10", "--width", "8", "--input-size", "32"]


@pytest.fixture
def checkpoint(tmp_path, framework):
    import importlib

    fw = importlib.import_module("lrd_" + framework)
    model = fw.models.create_model("resnet18", stem="cifar", num_classes=10, width=8)
    path = str(tmp_path / ("w.ckpt" if framework == "mindspore" else "w.pt"))
    fw.write_checkpoint(fw.state_to_numpy(model), path)
    return path


@pytest.fixture(autouse=True)
def cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("LRD_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_data_aware_plan_and_compress_from_the_cache_or_the_data(framework, checkpoint, tmp_path, capsys):
    base = ["--framework", framework, *SMALL, "--checkpoint", checkpoint]
    plan = tmp_path / "plan.json"
    code, out, _ = run(["plan", *base, "--mode", "mode3", "--rank-multiple", "4", "--calibration", "digits",
                        "--calibration-batches", "2", "--calibration-batch-size", "32", "--data-aware",
                        "--out", str(plan)], capsys)
    assert code == 0 and "data-aware (patch statistics)" in out and "calibration: 64 samples in 2 batches" in out
    layers = [l for l in json.loads(plan.read_text())["layers"] if l["method"] != "none"]
    assert layers and all(l["data_aware"] and l["method"] in ("svd", "tucker2") for l in layers)
    assert all(l["calibration"]["output_error"] < l["calibration"]["weight_space_error"] for l in layers)
    code, _, _ = run(["compress", *base, "--plan", str(plan), "--out", str(tmp_path / "c")], capsys)
    assert code == 0                                                    # statistics from the cache
    os.environ["LRD_CACHE_DIR"] = str(tmp_path / "other")
    code, _, err = run(["compress", *base, "--plan", str(plan), "--out", str(tmp_path / "d")], capsys)
    assert code == 2 and "--calibration" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "d").exists()
    code, _, _ = run(["compress", *base, "--plan", str(plan), "--out", str(tmp_path / "d"), "--calibration", "digits",
                      "--calibration-batches", "2", "--calibration-batch-size", "32"], capsys)
    assert code == 0


def test_error_allocation_from_the_command_line(framework, checkpoint, tmp_path, capsys):
    plan = tmp_path / "plan.json"
    code, out, _ = run(["plan", "--framework", framework, *SMALL, "--checkpoint", checkpoint, "--mode", "vanilla",
                        "--rank-multiple", "4", "--rank-selection", "error", "--budget", "2", "--calibration", "digits",
                        "--calibration-batches", "2", "--out", str(plan)], capsys)
    assert code == 0 and "error allocation: params budget 2.0x reached" in out
    d = json.loads(plan.read_text())
    assert d["config"]["rank_selection"] == "error" and d["meta"]["error_allocation"]["reached"] >= 2.0


def test_pareto_writes_the_plan_and_the_front(framework, checkpoint, tmp_path, capsys):
    plan, png = tmp_path / "plan.json", tmp_path / "plan.png"
    code, out, _ = run(["plan", "--framework", framework, *SMALL, "--checkpoint", checkpoint, "--mode", "pareto",
                        "--exclude", "layer[123]\\..*", "--exclude", "fc", "--pareto-ratios", "2",
                        "--rank-multiple", "4",
                        "--budget", "1.1", "--objective", "infer", "--profile-batch", "1", "--calibration", "digits",
                        "--calibration-batches", "1", "--evaluation-samples", "64", "--out", str(plan)], capsys)
    assert code == 0 and "pareto:" in out and f"front drawn to {png}" in out
    assert png.read_bytes()[:4] == b"\x89PNG"
    assert json.loads(plan.read_text())["meta"]["pareto"]["measured"]["metric"] >= 0


@pytest.mark.parametrize("make,match", [
    (lambda p: np.savez(p, x=np.zeros((4, 3, 32, 32), np.uint8)), "dtype uint8"),
    (lambda p: np.savez(p, x=np.zeros((4, 1, 32, 32), np.float32)), "does not match the model input"),
    (lambda p: np.savez(p, x=np.full((4, 3, 32, 32), np.nan, np.float32)), "NaN or Inf"),
    (lambda p: np.savez(p, x=np.random.default_rng(0).standard_normal((1, 3, 32, 32)).astype(np.float32)),
     "fewer than the rank"),
])
def test_bad_calibration_files(framework, checkpoint, tmp_path, capsys, cache_dir, make, match):
    data, plan = str(tmp_path / "bad.npz"), tmp_path / "plan.json"
    make(data)
    code, _, err = run(["plan", "--framework", framework, *SMALL, "--checkpoint", checkpoint, "--mode", "mode3",
                        "--rank-multiple", "4", "--calibration", data, "--data-aware", "--out", str(plan)], capsys)
    assert code == 2 and match in err and len(err.strip().splitlines()) == 1
    assert not plan.exists() and not (cache_dir.exists() and any(cache_dir.rglob("*.npz")))
