"""Checks a run makes before any work, and the ways into fine-tuning giving the same net."""
import os
import subprocess
import sys

import numpy as np
import pytest

from lrd_recipe import config as recipe, pipeline
from lrd_cli.main import main
from lrd_core.errors import ConfigError

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ZOO = os.path.join(ROOT, "modelzoo", "resnet")


def _tiny(out, **kw):
    values = dict(framework="torch", output_path=str(out), dataset="digits", image_size=16, width=4, train_limit=96,
                  eval_limit=48, batch_size=32, epoch_size=0, rank_quantization=2, finetune_epoch_size=1,
                  eval_batch_size=48, seed=0, progress="false")
    values.update(kw)
    return recipe.namespace(**values)


def test_checkpoint_path_that_is_not_a_compressed_directory_is_refused_before_any_work(tmp_path, capsys):
    weights = tmp_path / "weights"
    weights.mkdir()
    (weights / "model.pt").write_bytes(b"not used")                # an uncompressed checkpoint directory
    plan_only = tmp_path / "plan_only"
    plan_only.mkdir()
    (plan_only / "plan.json").write_text("{}")                      # plan.json but no weights
    for bad in (weights, weights / "model.pt", plan_only, tmp_path / "missing"):
        out = tmp_path / "run"
        with pytest.raises(ConfigError, match=f"checkpoint_path {bad} is not a compressed-model directory "
                                              r"\(plan.json \+ weights\).*give an uncompressed checkpoint as "
                                              r"pre_trained"):
            pipeline.run(_tiny(out, checkpoint_path=str(bad)), log=lambda *_: None)
        assert not out.exists()                                     # nothing trained, nothing written
    assert main(["finetune", "--framework", "torch", "--checkpoint_path", str(weights),
                 "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is not a compressed-model directory" in err[0] and not (tmp_path / "run").exists()
    env = {**os.environ, "PYTHONPATH": ROOT, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "train.py", "--framework", "torch", "--checkpoint_path", str(weights),
                           "--output_path", str(tmp_path / "zoo")], cwd=ZOO, capture_output=True, text=True,
                          timeout=120, env=env)
    assert proc.returncode == 1 and "train.py: error: checkpoint_path" in proc.stderr
    assert not (tmp_path / "zoo").exists()


class _Stop(Exception):
    """Ends a run where fine-tuning would start."""


def _weights_at_finetune(monkeypatch, cfg):
    seen = {}

    def stop(rt, model, *args, **kwargs):
        seen.update({k: np.array(v) for k, v in rt.fw.state_to_numpy(model).items()})
        raise _Stop()

    monkeypatch.setattr(pipeline, "finetune", stop)
    with pytest.raises(_Stop):
        pipeline.run(cfg, log=lambda *_: None)
    return seen


def test_compressed_directory_is_recalibrated_like_the_one_run_flow(fw, tmp_path, monkeypatch):
    """compress -> train.py --checkpoint_path DIR fine-tunes the same re-calibrated net as the pipeline."""
    kw = dict(framework=fw.FRAMEWORK, mode_name="PYNATIVE", bn_recalibration_batches=2)
    one_run = _weights_at_finetune(monkeypatch, _tiny(tmp_path / "a", **kw))
    compressed = str(tmp_path / "a" / "compressed")
    saved = fw.state_to_numpy(fw.load(compressed, fw.models.resnet18(num_classes=10, stem="cifar", width=4)))
    two_step = _weights_at_finetune(monkeypatch, _tiny(tmp_path / "b", checkpoint_path=compressed, **kw))
    assert set(two_step) == set(one_run)
    for k in one_run:
        np.testing.assert_array_equal(two_step[k], one_run[k], err_msg=k)
    stats = [k for k in one_run if k.endswith("running_mean")]
    assert stats and all(not np.allclose(one_run[k], saved[k]) for k in stats)   # re-calibration changed them


def test_run_without_original_training_saves_the_original_weights_and_the_demo_parity_runs(lrd_mindspore, tmp_path):
    """`lrd demo --epochs 0`: original/model.ckpt is written, and the parity check at the end reads it."""
    from lrd_recipe import demo

    cfg = _tiny(tmp_path, framework="mindspore", mode_name="PYNATIVE", train_limit=64, eval_limit=64,
                eval_batch_size=64)
    summary = pipeline.run(cfg, log=lambda *_: None, extra=demo.parity, export=False)
    initial = lrd_mindspore.models.resnet18(num_classes=10, stem="cifar", width=4, seed=0)
    saved = lrd_mindspore.models.resnet18(num_classes=10, stem="cifar", width=4, seed=1)
    assert not np.array_equal(lrd_mindspore.state_to_numpy(saved)["conv1.weight"],
                              lrd_mindspore.state_to_numpy(initial)["conv1.weight"])
    lrd_mindspore.load_checkpoint(saved, str(tmp_path / "original" / "model.ckpt"))
    a, b = lrd_mindspore.state_to_numpy(initial), lrd_mindspore.state_to_numpy(saved)
    for k in a:
        np.testing.assert_array_equal(b[k], a[k], err_msg=k)
    assert summary["parity_framework"] == "torch"
    assert summary["parity_max_abs_diff_decomposed"] < 1e-4 and summary["parity_max_abs_diff_finetuned"] < 1e-4


def test_image_folder_class_count_must_match_class_num(tmp_path):
    from lrd_recipe.runtime import Runtime
    from lrd_data import write_folder

    rng = np.random.default_rng(0)
    write_folder(str(tmp_path / "train"), rng.integers(0, 256, (6, 12, 12, 3)), np.array([0, 1, 2, 0, 1, 2]))
    write_folder(str(tmp_path / "val"), rng.integers(0, 256, (2, 12, 12, 3)), np.array([0, 1]))
    kw = dict(dataset="imagenet2012", data_path=str(tmp_path / "train"), image_size=8, eval_data_path="")
    with pytest.raises(ConfigError, match=r"imagenet2012 \(.*train\) has 3 classes but class_num is 10; "
                                          r"set class_num: 3"):
        Runtime(_tiny(tmp_path / "run", **kw)).sources()
    train, test = Runtime(_tiny(tmp_path / "run", class_num=3, **kw)).sources()
    assert (train.num_classes, test.num_classes, len(train), len(test)) == (3, 3, 6, 6)
    kw["eval_data_path"] = str(tmp_path / "val")
    with pytest.raises(ConfigError, match="has 2 class folders, data_path .* has 3"):
        Runtime(_tiny(tmp_path / "run", class_num=3, **kw)).sources()
