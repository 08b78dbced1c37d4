"""Tiny end-to-end runs of the recipe in both frameworks: train -> compress -> fine-tune (sequential
freezing) -> second stage -> evaluate -> export, checked against the files it wrote."""
import json
import os

import pytest

from lrd_recipe import config as recipe, pipeline
from lrd_data import load_digits

CONTRACT = ("framework", "model", "plan", "accuracy_original", "accuracy_decomposed", "accuracy_finetuned",
            "params_original", "params_compressed", "macs_original", "macs_compressed", "seconds_decompose",
            "seconds_total")


def _config(fw, out, mode_name):
    return recipe.namespace(framework=fw, output_path=str(out), mode_name=mode_name, dataset="digits", image_size=16,
                            width=4, train_limit=128, eval_limit=64, batch_size=32, epoch_size=1, lr_max=0.1,
                            compression_ratio=2.0, rank_quantization=2, bn_recalibration_batches=2,
                            finetune_epoch_size=2, freeze="sequential", stages=2, stage_rank_selection="pr",
                            stage_ratios=["3.0"], file_format="MINDIR" if fw == "mindspore" else "ONNX",
                            eval_batch_size=64, seed=0, progress="false")


@pytest.mark.parametrize("mode_name", ["GRAPH"])
def test_end_to_end(fw, tmp_path, mode_name):
    lines = []
    summary = pipeline.run(_config(fw.FRAMEWORK, tmp_path, mode_name), log=lines.append)
    assert set(CONTRACT) <= set(summary)
    assert json.loads((tmp_path / "summary.json").read_text())["accuracy_finetuned"] == summary["accuracy_finetuned"]
    assert (tmp_path / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    weights = "model.ckpt" if fw.FRAMEWORK == "mindspore" else "model.pt"
    for d in ("original", "compressed", "finetuned", "stage2"):
        assert (tmp_path / d / weights).is_file(), d
    # reloading what was saved reproduces the accuracies the run reported
    import importlib
    train = importlib.import_module(f"lrd_{fw.FRAMEWORK}.train")
    _, test = load_digits(size=16, seed=0)
    test = test.take(64)
    for d, key in (("compressed", "accuracy_decomposed"), ("stage2", "accuracy_finetuned")):
        net = fw.load(str(tmp_path / d), fw.models.resnet18(num_classes=10, stem="cifar", width=4))
        assert train.evaluate(net, test) == pytest.approx(summary[key], abs=1e-9), d
    # stage 2 re-compressed the factors: fewer parameters, same layers, ranks never larger
    s1, s2 = summary["stages"]
    assert s2["params_compressed"] < s1["params_compressed"] < summary["params_original"]
    assert set(s1["ranks"]) == set(s2["ranks"]) and s2["changed"]
    assert all(b <= a for k in s1["ranks"] for a, b in zip(s1["ranks"][k], s2["ranks"][k]))
    assert summary["plan"] == str(tmp_path / "stage2" / "plan.json")
    # the exported graph matches the live network
    exp = summary["export"]
    assert os.path.isfile(exp["path"]) and exp["max_abs_diff"] < 1e-4
    # logs show the freezing phases and the per-epoch lines with step time and images/s
    text = "\n".join(lines)
    assert "sequential freezing, phase 1" in text and "img/s" in text and "ms/step" in text
    for acc in (summary["accuracy_original"], summary["accuracy_decomposed"], summary["accuracy_finetuned"]):
        assert 0.0 <= acc <= 1.0
