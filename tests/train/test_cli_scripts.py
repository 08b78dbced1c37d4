"""`lrd train | finetune` chained on one run directory, and the ModelZoo scripts on its files (torch,
the cheaper framework; the MindSpore path of the same code runs in test_pipeline)."""
import json
import os
import subprocess
import sys

import pytest

from lrd_cli.main import main

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ZOO = os.path.join(ROOT, "modelzoo", "resnet")
TINY = ["--framework", "torch", "--image_size", "16", "--width", "4", "--train_limit", "96", "--eval_limit", "48",
        "--batch_size", "32", "--progress", "false", "--seed", "0"]


def _zoo(script, *args):
    env = {**os.environ, "PYTHONPATH": ROOT, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, script, "--config_path", "config/resnet18_digits_cpu.yaml", *TINY, *args],
                          cwd=ZOO, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def test_cli_chain_and_modelzoo_scripts(tmp_path):
    run = str(tmp_path / "run")
    assert main(["train", *TINY, "--epoch_size", "1", "--out", run]) == 0
    trained = json.loads((tmp_path / "run" / "train_summary.json").read_text())
    assert os.path.isfile(trained["checkpoint"]) and not os.path.exists(os.path.join(run, "compressed"))
    assert (tmp_path / "run" / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [len(r["curve"]) for r in trained["runs"]] == [3]          # 96 images / 32 = 3 steps, all plotted

    assert main(["finetune", *TINY, "--pre_trained", trained["checkpoint"], "--rank-quantization", "2",
                 "--freeze", "regular", "--finetune_epoch_size", "1", "--out", run]) == 0
    tuned = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert tuned["accuracy_original"] == pytest.approx(trained["accuracy_original"])
    assert tuned["config"]["freeze"] == "regular" and tuned["config"]["epoch_size"] == 0

    again = str(tmp_path / "again")                     # fine-tune the saved compressed net once more
    assert main(["finetune", *TINY, "--checkpoint_path", os.path.join(run, "finetuned"), "--out", again,
                 "--finetune_epoch_size", "1"]) == 0
    second = json.loads((tmp_path / "again" / "summary.json").read_text())
    assert second["accuracy_decomposed"] == pytest.approx(tuned["accuracy_finetuned"])
    assert second["params_compressed"] == tuned["params_compressed"]

    out = _zoo("eval.py", "--checkpoint_path", os.path.join(run, "finetuned"))
    assert f"top-1 accuracy {tuned['accuracy_finetuned']:.4f}" in out
    out = _zoo("compress.py", "--pre_trained", trained["checkpoint"], "--rank_quantization", "2",
               "--output_path", str(tmp_path / "zoo"))
    assert f"accuracy right after decomposition {tuned['accuracy_decomposed']:.4f}" in out
    out = _zoo("export.py", "--checkpoint_path", str(tmp_path / "zoo" / "compressed"), "--file_name", "tiny",
               "--output_path", str(tmp_path / "zoo"))
    assert os.path.isfile(tmp_path / "zoo" / "export" / "tiny.onnx") and "ONNX" in out
