"""The catalogue of bad inputs, one ``lrd`` command line each, generated over commands x files x frameworks.

Every case must end with exit status 2 and exactly one stderr line, leave every file of the lab
byte-identical and write nothing anywhere. ``{lab}`` is the folder made by :func:`tests.reliability.lab.make`.
"""
from __future__ import annotations

from typing import List, NamedTuple, Optional

from .lab import MODEL, mutation_edits

FRAMEWORKS = ("torch", "mindspore")
BAD_CHECKPOINTS = ["trunc.pt", "empty.pt", "random.pt", "trunc.ckpt", "empty.ckpt", "random.ckpt", "trunc.npz",
                   "empty.npz", "random.npz", "pickled.npz", "strings.npz", "wrong.pt", "wrong.ckpt", "nan.pt",
                   "nan.npz", "inf_bn.ckpt", "folder.pt", "missing.pt", "weights.bin", "afile/x.pt"]
UNWRITABLE = ["{lab}/afile/out", "/proc/lrd-no-such/out"]
TINY_RUN = ["--image_size", "16", "--width", "4", "--train_limit", "64", "--eval_limit", "32", "--batch_size", "32",
            "--epoch_size", "1", "--finetune_epoch_size", "1", "--rank_multiple", "2", "--eval_batch_size", "32",
            "--progress", "false"]


class Case(NamedTuple):
    id: str
    argv: List[str]
    cwd: Optional[str] = None          # relative to the lab


def _mutation_names() -> List[str]:
    probe = {"layers": [{"name": "a", "method": "tucker2", "kind": "conv2d"},
                        {"name": "b", "method": "none", "kind": "conv2d"},
                        {"name": "c", "method": "svd", "kind": "dense"}]}
    return sorted(mutation_edits(probe))


def _plan(fw: str) -> List[Case]:
    out = []
    base = ["plan", "--framework", fw, *MODEL]
    for name in BAD_CHECKPOINTS:
        out.append(Case(f"plan-{fw}-checkpoint-{name}", base + ["--checkpoint", f"{{lab}}/{name}",
                                                               "--out", "{lab}/new/p.json"]))
    for k, path in enumerate(UNWRITABLE + ["{lab}/userdir", "{lab}/good.pt", "/dev/null"]):
        out.append(Case(f"plan-{fw}-out-{k}", base + ["--checkpoint", "{lab}/good.pt", "--out", path]))
    options = {
        "input-size-0": ["--input-size", "0"], "input-size-4": ["--input-size", "4"],
        "imagenet-stem-16": ["--stem", "imagenet", "--input-size", "16"], "width-0": ["--width", "0"],
        "classes-0": ["--num-classes", "0"], "ratio-1": ["--ratio", "1"], "ratio-nan": ["--ratio", "nan"],
        "ratio-inf": ["--ratio", "inf"], "energy-0": ["--rank-selection", "energy", "--energy", "0"],
        "weakening-2": ["--vbmf-weakening", "2"], "multiple-0": ["--rank-multiple", "0"],
        "manual-no-rank": ["--rank-selection", "manual"],
        "rank-overlap": ["--rank", "layer1.*=2", "--rank", "layer1\\.0\\..*=3"],
        "rank-float": ["--rank", "layer1.0.conv1=1.5"], "rank-0": ["--rank", "layer1.0.conv1=0"],
        "rank-too-big": ["--rank", "layer1.0.conv1=99"], "rank-svd-pair": ["--rank", "fc=2,3"],
        "rank-no-eq": ["--rank", "fc"], "include-bad-re": ["--include", "("], "include-none": ["--include", "nosuch"],
        "exclude-none": ["--exclude", "nosuch"], "role-none": ["--role", "nosuch=stage:1"],
        "role-field": ["--role", "layer1.*=colour:1"],
        "auto-profile-batch-0": ["--mode", "auto", "--profile-batch", "0"],
        "auto-budget-half": ["--mode", "auto", "--budget", "0.5"], "model-unknown": ["--model", "resnet99"],
    }
    for name, extra in options.items():
        out.append(Case(f"plan-{fw}-{name}", base + extra + ["--out", "{lab}/new/p.json"]))
    return out


def _compress(fw: str, mutations: List[str]) -> List[Case]:
    base = ["compress", "--framework", fw, *MODEL, "--checkpoint", "{lab}/good.pt"]
    out = [Case(f"compress-{fw}-plan-{name}", base + ["--plan", f"{{lab}}/plans/{name}.json", "--out", "{lab}/new/c"])
           for name in mutations + ["truncated", "random", "empty", "folder", "missing"]]
    out.append(Case(f"compress-{fw}-imagenet-plan-on-cifar", base + ["--plan", "{lab}/plan_imagenet224.json",
                                                                     "--out", "{lab}/new/c"]))
    for name in BAD_CHECKPOINTS[:11] + ["nan.pt", "inf_bn.ckpt", "wrong.pt", "folder.pt"]:
        argv = ["compress", "--framework", fw, *MODEL, "--checkpoint", f"{{lab}}/{name}", "--plan", "{lab}/plan.json",
                "--out", "{lab}/new/c"]
        out.append(Case(f"compress-{fw}-checkpoint-{name}", argv))
    good = ["compress", "--framework", fw, *MODEL, "--plan", "{lab}/plan.json"]
    for k, path in enumerate(UNWRITABLE + ["{lab}/userdir", "{lab}/afile", "{lab}", "{lab}/plans"]):
        out.append(Case(f"compress-{fw}-out-{k}", good + ["--checkpoint", "{lab}/good.pt", "--out", path]))
    out.append(Case(f"compress-{fw}-out-dot-holding-input",
                    ["compress", "--framework", fw, *MODEL, "--checkpoint", "m.pt", "--plan", "{lab}/plan.json",
                     "--out", "."], cwd="indir"))
    out.append(Case(f"compress-{fw}-force-still-refuses-input",
                    ["compress", "--framework", fw, *MODEL, "--checkpoint", "m.pt", "--plan", "{lab}/plan.json",
                     "--out", ".", "--force"], cwd="indir"))
    return out


def _convert() -> List[Case]:
    out = []
    for src, dst in (("trunc.pt", "x.npz"), ("random.ckpt", "x.pt"), ("empty.npz", "x.ckpt"), ("nan.pt", "x.npz"),
                     ("inf_bn.ckpt", "x.pt"), ("pickled.npz", "x.pt"), ("missing.pt", "x.npz"),
                     ("weights.bin", "x.pt"), ("good.pt", "x.bin"), ("good.pt", "good.pt"), ("good.npz", "userdir"),
                     ("good.pt", "afile/x.npz"), ("strings.npz", "x.pt")):
        out.append(Case(f"convert-{src}-{dst}", ["convert", "--src", f"{{lab}}/{src}", "--out", f"{{lab}}/{dst}"]))
    out.append(Case("convert-file-with-to", ["convert", "--src", "{lab}/good.pt", "--to", "torch",
                                             "--out", "{lab}/new/x.npz"]))
    out.append(Case("convert-file-to-proc", ["convert", "--src", "{lab}/good.pt", "--out", "/proc/lrd-x.npz"]))
    for src in ("comp_badplan", "comp_trunc", "comp_noplan", "comp_nan", "folder.pt", "plans"):
        out.append(Case(f"convert-dir-{src}", ["convert", "--src", f"{{lab}}/{src}", "--to", "mindspore",
                                               "--out", "{lab}/new/d"]))
    out.append(Case("convert-dir-without-to", ["convert", "--src", "{lab}/comp_torch", "--out", "{lab}/new/d"]))
    for k, dst in enumerate(["userdir", "comp_torch", "afile", "afile/d", ".", "run_ft"]):
        out.append(Case(f"convert-dir-out-{k}", ["convert", "--src", "{lab}/comp_torch", "--to", "torch",
                                                 "--out", f"{{lab}}/{dst}"]))
    out.append(Case("convert-dir-into-own-parent", ["convert", "--src", "{lab}/run_ft/finetuned", "--to", "torch",
                                                    "--out", "{lab}/run_ft"]))
    return out


def _export(fw: str) -> List[Case]:
    base = ["export", "--framework", fw, "--model", "resnet18", "--format", "ONNX"]
    out = []
    for src in ("comp_badplan", "comp_trunc", "comp_noplan", "comp_nan", "missing", "afile", "userdir"):
        out.append(Case(f"export-{fw}-{src}", base + ["--compressed", f"{{lab}}/{src}", "--out", "{lab}/new/x.onnx"]))
    good = base + ["--compressed", "{lab}/comp_torch"]
    for name, extra in {"out-folder": ["--out", "{lab}/userdir"], "out-under-file": ["--out", "{lab}/afile/x.onnx"],
                        "out-proc": ["--out", "/proc/lrd-x.onnx"], "batch-0": ["--batch", "0", "--out", "{lab}/x.onnx"],
                        "input-size-0": ["--input-size", "0", "--out", "{lab}/x.onnx"],
                        "input-size-2": ["--input-size", "2", "--out", "{lab}/x.onnx"],
                        "checkpoint-with-compressed": ["--checkpoint", "{lab}/good.pt", "--out", "{lab}/x.onnx"],
                        "wrong-model": ["--model", "resnet34", "--out", "{lab}/x.onnx"],
                        "out-is-weights": ["--out", "{lab}/comp_torch/model.pt"]}.items():
        out.append(Case(f"export-{fw}-{name}", good + extra))
    orig = ["export", "--framework", fw, "--model", "resnet18", "--stem", "cifar", "--width", "4", "--num-classes",
            "10", "--format", "ONNX", "--original", "--out", "{lab}/new/o.onnx"]
    for name in ("trunc.pt", "nan.pt", "inf_bn.ckpt", "wrong.ckpt", "folder.pt"):
        out.append(Case(f"export-{fw}-original-{name}", orig + ["--checkpoint", f"{{lab}}/{name}"]))
    return out


def _inspect(fw: str) -> List[Case]:
    base = ["inspect", "--framework", fw, "--model", "resnet18", "--width", "4"]
    return [Case(f"inspect-{fw}-{name}", base + extra) for name, extra in {
        "input-size-0": ["--input-size", "0"], "imagenet-16": ["--input-size", "16"],
        "cifar-4": ["--stem", "cifar", "--input-size", "4"], "width-0": ["--width", "0"],
        "width-neg": ["--width", "-3"], "classes-0": ["--num-classes", "-1"],
        "unknown-model": ["--model", "resnet99"]}.items()]


def _bench() -> List[Case]:
    lay = ["bench", "layer", "--framework", "torch", "--cin", "8", "--cout", "8", "--ranks", "2,4", "--repeat", "1",
           "--warmup", "0"]
    mod = ["bench", "model", "--framework", "torch", *MODEL[:-2], "--modes", "original,vanilla", "--repeat", "1",
           "--warmup", "0", "--no-train"]
    cases = {
        "model-batch-0": mod + ["--batch", "0", "--out", "{lab}/new/r.json"],
        "model-input-4": mod + ["--input-size", "4", "--out", "{lab}/new/r.json"],
        "model-out-folder": mod + ["--out", "{lab}/userdir"],
        "model-out-under-file": mod + ["--out", "{lab}/afile/r.json"],
        "model-unknown-mode": mod[:-5] + ["--modes", "mode9", "--out", "{lab}/new/r.json"],
        "model-markdown-is-out": mod + ["--out", "{lab}/new/r.json", "--markdown", "{lab}/new/r.json"],
        "layer-batch-0": lay + ["--batch", "0", "--out", "{lab}/new/r.json"],
        "layer-hw-0": lay + ["--hw", "0", "--out", "{lab}/new/r.json"],
        "layer-hw-text": lay + ["--hw", "big", "--out", "{lab}/new/r.json"],
        "layer-stride-beyond-input": lay + ["--hw", "2", "--stride", "4", "--out", "{lab}/new/r.json"],
        "layer-ranks-text": lay[:-4] + ["--ranks", "many", "--out", "{lab}/new/r.json"],
        "layer-repeat-0": lay[:-4] + ["--repeat", "0", "--out", "{lab}/new/r.json"],
        "layer-plot-proc": lay + ["--out", "{lab}/new/r.json", "--plot", "/proc/lrd-x.png"],
        "lite-batch-0": ["bench", "lite", "--mindir", "{lab}/missing.mindir", "--batch", "0", "--out", "{lab}/r.json"],
        "lite-out-is-mindir": ["bench", "lite", "--mindir", "{lab}/good.pt", "--out", "{lab}/good.pt"],
    }
    return [Case(f"bench-{name}", argv) for name, argv in cases.items()]


def _train() -> List[Case]:
    base = ["--framework", "torch", *TINY_RUN]
    cases = {
        "train-out-userdir": ["train", *base, "--out", "{lab}/userdir"],
        "train-out-file": ["train", *base, "--out", "{lab}/afile"],
        "train-out-under-file": ["train", *base, "--out", "{lab}/afile/run"],
        "train-out-proc": ["train", *base, "--out", "/proc/lrd-run"],
        "pipeline-image-size-2": ["pipeline", *base, "--image_size", "2", "--out", "{lab}/new/run"],
        "finetune-pre-trained-trunc": ["finetune", *base, "--pre_trained", "{lab}/trunc.npz", "--out", "{lab}/new/run"],
        "finetune-pre-trained-random": ["finetune", *base, "--pre_trained", "{lab}/random.pt", "--out", "{lab}/new/r"],
        "finetune-pre-trained-nan": ["finetune", *base, "--pre_trained", "{lab}/nan.pt", "--out", "{lab}/new/run"],
        "finetune-pre-trained-wrong": ["finetune", *base, "--pre_trained", "{lab}/wrong.pt", "--out", "{lab}/new/run"],
        "finetune-pre-trained-folder": ["finetune", *base, "--pre_trained", "{lab}/folder.pt", "--out", "{lab}/new/r"],
        "finetune-pre-trained-missing": ["finetune", *base, "--pre_trained", "{lab}/missing.pt", "--out", "{lab}/n/r"],
        "finetune-checkpoint-path-is-output": ["finetune", *base, "--checkpoint_path", "{lab}/run_ft/finetuned",
                                               "--out", "{lab}/run_ft"],
        "train-pre-trained-is-output": ["train", *base, "--pre_trained", "{lab}/run_in/original/model.pt",
                                        "--out", "{lab}/run_in"],
        "train-resume-torch-run-in-mindspore": ["train", *base, "--framework", "mindspore", "--out",
                                                "{lab}/run_torch"],
        "train-config-missing": ["train", "--config", "{lab}/missing.yaml", "--out", "{lab}/new/run"],
        "train-config-binary": ["train", "--config", "{lab}/random.npz", "--out", "{lab}/new/run"],
    }
    return [Case(name, argv) for name, argv in cases.items()]


BAD_CALIBRATION = ["trunc.npz", "empty.npz", "random.npz", "pickled.npz", "strings.npz", "calib_nan.npz",
                   "calib_shape.npz", "good.npz", "folder.pt", "missing.npz", "random.pt"]


def _calibration(fw: str) -> List[Case]:
    base = ["plan", "--framework", fw, *MODEL, "--checkpoint", "{lab}/good.pt", "--data-aware",
            "--no-calibration-cache", "--out", "{lab}/new/p.json"]
    out = [Case(f"plan-{fw}-calibration-{name}", base + ["--calibration", f"{{lab}}/{name}"])
           for name in BAD_CALIBRATION]
    for name, extra in {"batches-0": ["--calibration-batches", "0"], "batch-size-0": ["--calibration-batch-size", "0"],
                        "memory-neg": ["--calibration-memory", "-1"]}.items():
        out.append(Case(f"plan-{fw}-calibration-{name}", base + ["--calibration", "digits"] + extra))
    return out


def _reduce(fw: str) -> List[Case]:
    base = ["reduce", "--framework", fw, *MODEL, "--samples", "16"]
    good = base + ["--checkpoint", "{lab}/good.pt"]
    out = [Case(f"reduce-{fw}-checkpoint-{name}", base + ["--checkpoint", f"{{lab}}/{name}", "--method", "ron",
                                                          "--out", "{lab}/new/r"])
           for name in ("trunc.pt", "random.ckpt", "nan.pt", "inf_bn.ckpt", "wrong.pt", "folder.pt")]
    out += [Case(f"reduce-{fw}-calibration-{name}", good + ["--method", "ron", "--calibration", f"{{lab}}/{name}",
                                                             "--out", "{lab}/new/r"])
            for name in BAD_CALIBRATION]
    options = {
        "samples-0": ["--method", "ron", "--samples", "0"], "rank-0": ["--method", "ron", "--rank", "0"],
        "rank-too-big": ["--method", "ron", "--rank", "9999"], "rank-text": ["--method", "ron", "--rank", "x"],
        "rank-unknown-layer": ["--method", "ron", "--rank", "nosuch=3"],
        "energy-0": ["--method", "ron", "--energy", "0"], "energy-nan": ["--method", "ron", "--energy", "nan"],
        "flop-budget-2": ["--method", "ron", "--flop-budget", "2"], "tol-half": ["--method", "ron", "--tol", "0.5"],
        "layers-unknown": ["--method", "ron", "--layers", "nosuch"], "input-size-4": ["--method", "ron",
                                                                                     "--input-size", "4"],
        "finetune-no-labels": ["--method", "ron", "--calibration", "{lab}/calib_noy.npz", "--finetune-epochs", "1"],
        "labels-not-integers": ["--method", "asnet", "--cut", "fc", "--calibration", "{lab}/calib_ybad.npz"],
        "asnet-no-cut": ["--method", "asnet"], "asnet-cut-unknown": ["--method", "asnet", "--cut", "nosuch"],
    }
    out += [Case(f"reduce-{fw}-{name}", good + extra + ["--out", "{lab}/new/r"]) for name, extra in options.items()]
    for k, path in enumerate(UNWRITABLE + ["{lab}/userdir", "{lab}/afile", "{lab}"]):
        out.append(Case(f"reduce-{fw}-out-{k}", good + ["--method", "ron", "--out", path]))
    return out


def _eval(fw: str) -> List[Case]:
    base = ["eval", "--framework", fw, *MODEL]
    out = [Case(f"eval-{fw}-checkpoint-{name}", base + ["--checkpoint", f"{{lab}}/{name}", "--data", "digits"])
           for name in ("trunc.pt", "random.ckpt", "nan.pt", "inf_bn.ckpt", "wrong.pt", "folder.pt", "missing.pt")]
    out += [Case(f"eval-{fw}-data-{name}", base + ["--data", f"{{lab}}/{name}"])
            for name in BAD_CALIBRATION + ["calib_noy.npz", "userdir"]]
    comp = ["eval", "--framework", fw, "--model", "resnet18", "--data", "digits", "--compressed"]
    out += [Case(f"eval-{fw}-compressed-{name}", comp + [f"{{lab}}/{name}"])
            for name in ("comp_badplan", "comp_trunc", "comp_noplan", "comp_nan", "missing", "afile", "userdir")]
    options = {"compressed-and-checkpoint": comp + ["{lab}/comp_torch", "--checkpoint", "{lab}/good.pt"],
               "compressed-other-width": comp + ["{lab}/comp_torch", "--width", "8"],
               "compressed-input-2": comp + ["{lab}/comp_torch", "--input-size", "2"],
               "input-4": base[:-2] + ["--input-size", "4", "--data", "digits"],
               "batch-0": base + ["--data", "digits", "--batch", "0"],
               "limit-0": base + ["--data", "digits", "--limit", "0"],
               "out-folder": base + ["--data", "digits", "--out", "{lab}/userdir"],
               "out-under-file": base + ["--data", "digits", "--out", "{lab}/afile/r.json"],
               "out-proc": base + ["--data", "digits", "--out", "/proc/lrd-r.json"],
               "out-is-checkpoint": base + ["--checkpoint", "{lab}/good.pt", "--data", "digits",
                                            "--out", "{lab}/good.pt"]}
    return out + [Case(f"eval-{fw}-{name}", argv) for name, argv in options.items()]


def _demo() -> List[Case]:
    base = ["demo", "--framework", "torch"]
    cases = {"out-userdir": ["--out", "{lab}/userdir"], "out-file": ["--out", "{lab}/afile"],
             "out-under-file": ["--out", "{lab}/afile/d"], "out-proc": ["--out", "/proc/lrd-demo"],
             "epochs-neg": ["--epochs", "-1"], "stages-0": ["--stages", "0"], "width-0": ["--width", "0"],
             "ratio-1": ["--ratio", "1"], "mode-unknown": ["--mode", "mode9"], "rank-multiple-0": ["--rank-multiple", "0"]}
    return [Case(f"demo-{name}", base + extra + ([] if "--out" in extra else ["--out", "{lab}/new/d"]))
            for name, extra in cases.items()]


def cases() -> List[Case]:
    """The whole catalogue."""
    mutations = _mutation_names()
    out = []
    for fw in FRAMEWORKS:
        out += _plan(fw) + _compress(fw, mutations) + _export(fw) + _inspect(fw) + _calibration(fw) + _reduce(fw)
        out += _eval(fw)
    return out + _convert() + _bench() + _train() + _demo()
