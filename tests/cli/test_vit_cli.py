"""The `lrd` command on Vision Transformers: the ViT options (--input-size as image_size, --patch-size,
--depth, --blocks), the transformer columns of `lrd inspect`, and bad input as one line with nothing written."""
import json
import os

import pytest

from tests.cli.conftest import run

VIT = ["--model", "vit_tiny", "--input-size", "32", "--patch-size", "8", "--depth", "2", "--num-classes", "10"]


def test_inspect_shows_transformer_roles_and_modes(framework, capsys):
    code, out, _ = run(["inspect", "--framework", framework, *VIT], capsys)
    assert code == 0
    assert "blocks.1.attn.v" in out and "attn v" in out and "mlp fc2" in out and " b2 " in out
    header, last = out.strip().splitlines()[1].split(), out.strip().splitlines()[-1].split()
    assert header[-2:] == ["attn", "mlp"] and last[-2:] == ["8", "4"]          # 2 blocks x 4 projections / 2 MLP


def test_plan_with_blocks_then_compress(framework, tmp_path, capsys):
    plan_path, out_dir = tmp_path / "plan.json", tmp_path / "c"
    code, out, _ = run(["plan", "--framework", framework, *VIT, "--mode", "mlp", "--blocks", "last:1",
                        "--rank-multiple", "16", "--out", str(plan_path)], capsys)
    assert code == 0
    plan = json.loads(plan_path.read_text())
    assert plan["config"]["blocks"] == "last:1"
    assert plan["meta"]["model_kwargs"] == {"num_classes": 10, "patch_size": 8, "depth": 2, "image_size": 32}
    assert [l["name"] for l in plan["layers"] if l["method"] != "none"] == ["blocks.1.mlp.fc1", "blocks.1.mlp.fc2"]
    code, out, _ = run(["compress", "--framework", framework, "--model", "vit_tiny", "--plan", str(plan_path),
                        "--out", str(out_dir)], capsys)                # the model options come from the plan
    assert code == 0 and "decomposed 2 layers" in out and "blocks.1.mlp.fc2" in out
    assert "plan.json" in os.listdir(out_dir)


@pytest.mark.parametrize("argv, words", [
    (["--model", "vit_tiny", "--input-size", "30"], "image_size 30 is not divisible by patch_size 16"),
    (VIT + ["--stem", "cifar"], "model vit_tiny does not take --stem"),
    (["--model", "resnet18", "--patch-size", "4"], "model resnet18 does not take --patch-size"),
    (VIT + ["--mode", "attn", "--blocks", "last:3"], "the model has 2 transformer blocks; choose at most 2"),
    (VIT + ["--mode", "attn", "--rank-selection", "manual", "--rank", "blocks.0.attn.q=400"],
     "exceeds the full rank (192,)"),
    (VIT + ["--mode", "attn", "--rank-selection", "manual", "--rank", "blocks.0.attn.q=64,32"],
     "Tucker-2 ranks (r_out, r_in) (64, 32) apply to KxK convs only: give one rank"),
])
def test_bad_input_is_one_line_and_writes_nothing(framework, tmp_path, capsys, argv, words):
    out = tmp_path / "plan.json"
    code, _, err = run(["plan", "--framework", framework, *argv, "--out", str(out)], capsys)
    assert code == 2 and err.count("\n") == 1 and err.startswith("lrd plan: error: ") and words in err
    assert not out.exists() and os.listdir(tmp_path) == []


def test_inspect_of_a_bad_image_size_is_one_line(capsys):
    code, _, err = run(["inspect", "--framework", "torch", "--model", "vit_b_16", "--input-size", "30"], capsys)
    assert code == 2 and err.count("\n") == 1
    assert "use an image_size that is a multiple of 16 (e.g. 16 or 32)" in err


def test_bench_model_on_a_vit_with_sequential_freezing(framework, tmp_path, capsys):
    """`lrd bench model` builds the ViT for --input-size and times each sequential-freezing phase beside the rest."""
    out = tmp_path / "r.json"
    code, _, _ = run(["bench", "model", "--framework", framework, "--model", "vit_tiny", "--input-size", "32",
                      "--patch-size", "8", "--depth", "1", "--num-classes", "10", "--batch", "2",
                      "--modes", "original,all", "--exclude", r"patch_embed\.proj", "--ratio", "2", "--rank-multiple",
                      "16", "--sequential", "all", "--repeat", "1", "--warmup", "0", "--threads", "1",
                      "--out", str(out)], capsys)
    assert code == 0
    result = json.loads(out.read_text())
    assert result["model_kwargs"] == {"num_classes": 10, "patch_size": 8, "depth": 1, "image_size": 32}
    rows = {r["mode"]: r for r in result["results"]}
    assert list(rows) == ["original", "all", "all+sequential"]
    seq = rows["all+sequential"]
    assert seq["params"] == rows["all"]["params"] < rows["original"]["params"]
    assert seq["freeze_phases"] == len(seq["train_phase_ratios"]) == 2 and seq["train_ratio"] > 0
    assert seq.get("infer_ms") is None and rows["all"]["decomposed"] == 6    # 4 attention + 2 MLP
