"""The recipe config: YAML -> flags, unknown keys rejected, shipped configs valid."""
import glob
import os

import pytest

from lrd_recipe import config as recipe
from lrd_recipe.demo import DEMO
from lrd_cli.main import main
from lrd_core.errors import ConfigError

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONFIGS = sorted(glob.glob(os.path.join(ROOT, "modelzoo", "resnet", "config", "*.yaml")))


def test_yaml_sets_defaults_and_flags_override(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("lr_max: 0.02\nfreeze: sequential\ninclude: [layer1.*]\nrun_distribute: false\n"
                    "---\nlr_max: peak learning rate\n")
    cfg = recipe.parse(["--config_path", str(path), "--freeze-every", "3", "--epoch_size", "7"])
    assert (cfg.lr_max, cfg.freeze, cfg.freeze_every, cfg.epoch_size) == (0.02, "sequential", 3, 7)
    assert cfg.include == ["layer1.*"] and cfg.run_distribute is False
    assert recipe.parse(["--config", str(path), "--lr_max", "0.5"]).lr_max == 0.5


def test_unknown_key_is_rejected_with_the_closest_name(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("lr_max: 0.1\nfinetune_lr_mx: 0.02\n")
    with pytest.raises(ConfigError, match=r"unknown config key 'finetune_lr_mx' \(did you mean 'finetune_lr_max'\?\)"):
        recipe.parse(["--config_path", str(path)])
    path.write_text("lr_max: 0.1\n---\nnot_a_key: help text\n")            # help documents are checked too
    with pytest.raises(ConfigError, match="not_a_key"):
        recipe.read_yaml(str(path))


def test_cli_reports_unknown_key_in_one_line(tmp_path, capsys):
    path = tmp_path / "bad.yaml"
    path.write_text("epoch_sise: 3\n")
    assert main(["train", "--config", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"lrd train: error: {path}: unknown config key 'epoch_sise' (did you mean 'epoch_size'?); "
                   f"the known keys are listed by --help"]
    assert main(["finetune", "--framework", "torch"]) == 2
    assert "needs trained weights" in capsys.readouterr().err


@pytest.mark.parametrize("values, words", [({"freeze": "always"}, "choose one of none, sequential"),
                                           ({"batch_size": 0}, "'batch_size' must be >= 1"),
                                           ({"dataset": "mnist"}, "choose one of digits")])
def test_bad_values(values, words):
    with pytest.raises(ConfigError, match=words):
        recipe.namespace(**values)


@pytest.mark.parametrize("flags, words", [
    (["--freeze_order", "first,middle"], r"config key 'freeze_order' = \['first', 'middle'\]: freeze order must list "
                                         r"distinct positions"),
    (["--freeze_regular", "first,first"], "config key 'freeze_regular'"),
    (["--stage_vbmf_weakening", "3"], r"config key 'stage_vbmf_weakening' = 3.0: stage vbmf_weakening must be in "
                                      r"\(0, 1\]"),
    (["--stage_ratios", "3,2"], r"config key 'stage_ratios' = \['3', '2'\]: stage ratios must be > 1 and "
                                r"non-decreasing"),
    (["--compression_ratio", "0.5"], "config key 'compression_ratio' = 0.5: ratio must be a number > 1"),
    (["--final_dense_ratio", "0.9"], "config key 'final_dense_ratio' = 0.9"),
    (["--compression_mode", "mode9"], "config key 'compression_mode' = 'mode9'; choose one of vanilla, mode1"),
    (["--rank_selection", "foo"], "config key 'rank_selection' = 'foo'; choose one of pr, vbmf, energy"),
    (["--rank_quantization", "0"], "config key 'rank_quantization' = 0: rank_multiple must be a positive integer"),
    (["--finetune_lr_max", "0"], "config key 'finetune_lr_max' must be > 0, got 0.0"),
    (["--lr_end", "-1"], "config key 'lr_end' must be >= 0"),
    (["--finetune_lr_decay_mode", "exp"], "config key 'finetune_lr_decay_mode' = 'exp'; choose one of linear, cosine"),
    (["--include", "layer1.(0"], r"'layer1.\(0' is not a regular expression"),
    (["--momentum", "1.5"], r"config key 'momentum' must be in \[0.0, 1.0\)"),
])
def test_bad_values_fail_at_parse_time_naming_the_key(flags, words):
    """What the run builds after the original training (plan, stages, freezing, fine-tune LR) is
    checked when the config is read."""
    with pytest.raises(ConfigError, match=words):
        recipe.parse(flags)


def test_flags_are_not_abbreviated_and_unknown_ones_name_the_closest(tmp_path, capsys):
    with pytest.raises(ConfigError, match=r"^unknown option --lr_ma \(did you mean --lr_max\?\)$"):
        recipe.parse(["--lr_ma", "0.5"])
    with pytest.raises(ConfigError, match=r"^unknown option --finetune-lr-mx \(did you mean --finetune-lr-max\?\)$"):
        recipe.parse(["--finetune-lr-mx=0.5"])
    with pytest.raises(SystemExit) as exc:
        main(["train", "--lr_ma", "0.5", "--out", str(tmp_path / "run")])
    assert exc.value.code == 2 and not (tmp_path / "run").exists()
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["lrd train: error: unknown option --lr_ma (did you mean --lr_max?) (see lrd train --help)"]
    with pytest.raises(SystemExit):
        main(["finetune", "--freeze_ord", "first"])
    assert "unknown option --freeze_ord (did you mean --freeze_order?)" in capsys.readouterr().err


def test_empty_yaml_values_and_integer_keys(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("batch_size:\n")
    with pytest.raises(ConfigError, match=f"{path}: key 'batch_size' has no value; give one \\(default: 64\\)"):
        recipe.parse(["--config", str(path)])
    path.write_text("pre_trained:\ninclude:\nepoch_size: 3.0\n")             # empty path / list: the empty default
    cfg = recipe.parse(["--config", str(path)])
    assert (cfg.pre_trained, cfg.include, cfg.epoch_size) == ("", [], 3) and type(cfg.epoch_size) is int
    path.write_text("epoch_size: 2.7\n")
    with pytest.raises(ConfigError, match=f"{path}: key 'epoch_size' = 2.7: expected an integer, got 2.7"):
        recipe.read_yaml(str(path))
    path.write_text("epoch_size: true\n")
    with pytest.raises(ConfigError, match="expected an integer, got True"):
        recipe.read_yaml(str(path))
    with pytest.raises(ConfigError, match="argument --epoch_size/--epoch-size: expected an integer, got '2.7'"):
        recipe.parse(["--epoch_size", "2.7"])
    with pytest.raises(ConfigError, match="key 'lr_max' has no value"):
        recipe.namespace(lr_max=None)
    assert recipe.namespace(batch_size=32.0).batch_size == 32


@pytest.mark.parametrize("path", CONFIGS, ids=[os.path.basename(p) for p in CONFIGS])
def test_shipped_configs_are_valid(path):
    values = recipe.read_yaml(path)
    cfg = recipe.namespace(**values)
    assert cfg.framework == "mindspore"


def test_paper_settings_and_demo_config():
    train = recipe.read_yaml(os.path.join(ROOT, "modelzoo/resnet/config/resnet50_imagenet2012_train.yaml"))
    assert {k: train[k] for k in ("momentum", "epoch_size", "label_smooth_factor", "lr_decay_mode", "lr_init",
                                  "lr_max", "lr_end")} == {"momentum": 0.9, "epoch_size": 90, "label_smooth_factor": 0.1,
                                                          "lr_decay_mode": "linear", "lr_init": 0.0, "lr_max": 0.1,
                                                          "lr_end": 0.0}
    lrd = recipe.read_yaml(os.path.join(ROOT, "modelzoo/resnet/config/resnet50_imagenet2012_lrd.yaml"))
    assert {k: lrd[k] for k in ("rank_selection", "compression_mode", "final_dense_ratio", "compression_ratio",
                                "rank_quantization", "finetune_lr_max", "finetune_epoch_size")} == {
        "rank_selection": "pr", "compression_mode": "mode3", "final_dense_ratio": 1.3, "compression_ratio": 3.0,
        "rank_quantization": 32, "finetune_lr_max": 0.02, "finetune_epoch_size": 45}
    assert train["batch_size"] * 8 == lrd["batch_size"] * 8 == 256
    digits = recipe.read_yaml(os.path.join(ROOT, "modelzoo/resnet/config/resnet18_digits_cpu.yaml"))
    assert {k: digits[k] for k in DEMO} == DEMO
