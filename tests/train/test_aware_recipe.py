"""The recipe's accuracy-aware steps in both frameworks: calibration from the training data, data-aware
decomposition, rank_selection error, and the demo's weight-space / data-aware comparison."""
import json

from lrd_recipe import config as recipe, pipeline
from lrd_recipe.report import table


def _config(fw, out, **kw):
    return recipe.namespace(framework=fw, output_path=str(out), mode_name="PYNATIVE", dataset="digits", image_size=16,
                            width=8, train_limit=192, eval_limit=64, batch_size=32, epoch_size=1, lr_max=0.1,
                            compression_ratio=2.0, rank_quantization=4, bn_recalibration_batches=2,
                            finetune_epoch_size=1, eval_batch_size=64, seed=0, progress="false", calibration_batches=3,
                            **kw)


def test_compare_data_aware_in_the_summary_and_table(fw, tmp_path):
    summary = pipeline.run(_config(fw.FRAMEWORK, tmp_path, compare_data_aware=True), export=False)
    saved = json.loads((tmp_path / "summary.json").read_text())
    for key in ("accuracy_decomposed", "accuracy_recalibrated", "accuracy_decomposed_data_aware",
                "accuracy_finetuned"):
        assert 0.0 <= saved[key] <= 1.0, key
    assert saved["accuracy_decomposed_data_aware"] == summary["accuracy_decomposed_data_aware"]
    text = table(summary)
    assert "weight-space  data-aware" in text and "after BatchNorm re-calibration" in text
    plan = json.loads((tmp_path / "finetuned" / "plan.json").read_text())
    assert not any(l.get("data_aware") for l in plan["layers"])          # the main flow stays weight-space


def test_data_aware_error_allocation_run(fw, tmp_path):
    summary = pipeline.run(_config(fw.FRAMEWORK, tmp_path, data_aware=True, rank_selection="error",
                                   compression_budget=1.8), export=False)
    plan = json.loads((tmp_path / "compressed" / "plan.json").read_text())
    assert plan["config"]["rank_selection"] == "error" and plan["meta"]["error_allocation"]["reached"] >= 1.8
    decomposed = [l for l in plan["layers"] if l["method"] != "none"]
    assert decomposed and all(l["data_aware"] for l in decomposed)
    assert summary["calibration"]["samples"] == 96 and summary["calibration"]["batches"] == 3
