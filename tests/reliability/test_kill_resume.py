"""Killed runs: a process SIGKILLed in the middle of writing leaves only lrd's temporaries, which the next
successful run removes; a resumed pipeline reuses its finished decomposition and says how far it got."""
import json
import os
import signal
import subprocess
import sys

import pytest

from lrd_cli.main import main

from .lab import MODEL

# Runs an lrd command in which one backend method SIGKILLs the process right after it has written its file.
DYING = """
import importlib, os, signal, sys
module, cls, method = sys.argv[1:4]
owner = getattr(importlib.import_module(module), cls)
original = getattr(owner, method)
def dying(self, *args, **kwargs):
    out = original(self, *args, **kwargs)
    os.kill(os.getpid(), signal.SIGKILL)
    return out
setattr(owner, method, dying)
from lrd_cli.main import main
sys.exit(main(sys.argv[4:]))
"""
BACKENDS = {"torch": ("lrd_torch.backend", "TorchBackend"), "mindspore": ("lrd_mindspore.backend", "MindSporeBackend")}


def killed(framework: str, method: str, argv, cwd: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, GLOG_v="3")
    return subprocess.run([sys.executable, "-c", DYING, *BACKENDS[framework], method, *argv], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def temporaries(folder: str, name: str):
    return sorted(n for n in os.listdir(folder) if n.startswith(f".{name}.tmp-"))


@pytest.mark.parametrize("framework", ["torch", "mindspore"])
def test_compress_killed_while_writing_leaves_only_a_temporary_the_next_run_removes(framework, lab, tmp_path):
    argv = ["compress", "--framework", framework, *MODEL, "--checkpoint", os.path.join(lab, "good.pt"),
            "--plan", os.path.join(lab, "plan.json"), "--out", str(tmp_path / "c")]
    proc = killed(framework, "write_native", argv, str(tmp_path))
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    left = temporaries(str(tmp_path), "c")
    assert len(left) == 1 and not (tmp_path / "c").exists()              # no half-written output
    assert sorted(os.listdir(tmp_path / left[0])) == sorted(["plan.json", "model.pt" if framework == "torch"
                                                             else "model.ckpt"])
    assert main(argv) == 0
    assert temporaries(str(tmp_path), "c") == [] and sorted(os.listdir(tmp_path)) == ["c"]


@pytest.mark.parametrize("framework,fmt", [("torch", "ONNX"), ("mindspore", "MINDIR")])
def test_export_killed_while_writing_leaves_only_a_temporary_the_next_run_removes(framework, fmt, lab, tmp_path):
    out = str(tmp_path / f"net.{fmt.lower()}")
    argv = ["export", "--framework", framework, "--model", "resnet18", "--compressed", os.path.join(lab, "comp_torch"),
            "--format", fmt, "--out", out, "--no-check"]
    proc = killed(framework, "export_native", argv, str(tmp_path))
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    name = os.path.basename(out)
    assert len(temporaries(str(tmp_path), name)) == 1 and not os.path.exists(out)
    assert main(argv) == 0
    assert sorted(os.listdir(tmp_path)) == [name]


def test_cli_subprocess_errors_are_one_line_on_the_whole_stderr(lab, tmp_path):
    """A real process (imports, framework logging and all): one stderr line, exit 2, nothing written."""
    env = dict(os.environ, GLOG_v="3")
    plan = os.path.join(lab, "plans", "stride_2.json")              # found on the traced MindSpore model
    for argv in (["compress", "--framework", "mindspore", *MODEL, "--plan", plan, "--out", str(tmp_path / "c")],
                 ["convert", "--src", os.path.join(lab, "comp_torch"), "--to", "torch", "--out",
                  os.path.join(lab, "userdir")]):
        proc = subprocess.run([sys.executable, "-m", "lrd_cli.main", *argv], env=env, capture_output=True, text=True,
                              timeout=300)
        assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert os.listdir(tmp_path) == []
    assert sorted(os.listdir(os.path.join(lab, "userdir"))) == ["keep.txt", "notes.txt"]


@pytest.fixture
def one_torch_thread():
    """Tiny training steps on a shared 2-core machine: torch's default threads spin-wait (see tests/train)."""
    import torch
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize("framework", ["torch", "mindspore"])
def test_resumed_pipeline_reuses_its_decomposition_and_counts_epochs_right(framework, tmp_path, one_torch_thread):
    from lrd_recipe import config as recipe, pipeline

    cfg = recipe.namespace(framework=framework, output_path=str(tmp_path / "run"), mode_name="PYNATIVE",
                           dataset="digits", image_size=16, width=4, train_limit=64, eval_limit=32, batch_size=32,
                           epoch_size=1, finetune_epoch_size=1, rank_multiple=2, eval_batch_size=32, seed=0,
                           progress="false")
    first = []
    summary = pipeline.run(cfg, log=first.append, export=False)
    compressed = tmp_path / "run" / "compressed"
    stamp = {n: os.stat(compressed / n).st_mtime_ns for n in os.listdir(compressed)}
    plan = json.loads((compressed / "plan.json").read_text())
    assert plan["meta"]["source_digest"] and plan["meta"]["seconds_decompose"] == summary["seconds_decompose"]
    again = []
    resumed = pipeline.run(cfg, log=again.append, export=False)
    text = "\n".join(again)
    assert f"reused the decomposition of {summary['layers_decomposed']} layers" in text
    assert "already finished this run (1/1 epochs, step 2/2)" in text and "epoch 2" not in text
    assert {n: os.stat(compressed / n).st_mtime_ns for n in os.listdir(compressed)} == stamp   # not rewritten
    for key in ("accuracy_original", "accuracy_decomposed", "accuracy_finetuned", "params_compressed",
                "seconds_decompose"):
        assert resumed[key] == summary[key], key
    # other weights or another plan are decomposed afresh
    from lrd_core import Plan
    from lrd_recipe.rundir import reusable_decomposition

    saved = Plan.from_json(str(compressed / "plan.json"))
    digest = saved.meta["source_digest"]
    assert reusable_decomposition(str(compressed), saved, digest, framework) is not None
    assert reusable_decomposition(str(compressed), saved, "0" * 64, framework) is None
    other = Plan.from_dict(saved.to_dict())
    lp = other.decomposed()[0]
    lp.ranks = tuple(max(1, r - 1) for r in lp.ranks) if max(lp.ranks) > 1 else lp.ranks
    if lp.ranks != saved.decomposed()[0].ranks:
        assert reusable_decomposition(str(compressed), other, digest, framework) is None
