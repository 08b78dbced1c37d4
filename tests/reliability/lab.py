"""The files a hostile-but-realistic user hands to lrd, made in the test: good inputs and their broken twins.

Every model is the tiny CIFAR-stem ResNet-18 (width 4, 10 classes) at input 32, so a command takes a
fraction of a second. ``make(root)`` writes everything under ``root`` and returns it.
"""
from __future__ import annotations

import copy
import json
import os

import numpy as np

MODEL = ["--model", "resnet18", "--stem", "cifar", "--num-classes", "10", "--width", "4", "--input-size", "32"]
KW = dict(num_classes=10, stem="cifar", width=4)
SHAPE = (1, 3, 32, 32)


def _write(path: str, data: bytes) -> None:
    with open(path, "wb") as fh:
        fh.write(data)


def _broken(root: str, good: str, suffix: str, rng) -> None:
    data = open(good, "rb").read()
    _write(os.path.join(root, f"trunc{suffix}"), data[: len(data) // 2])
    _write(os.path.join(root, f"empty{suffix}"), b"")
    _write(os.path.join(root, f"random{suffix}"), rng.integers(0, 256, 4096, dtype=np.uint8).tobytes())


def plan_mutations(plan: dict) -> dict:
    """``{name: edited plan JSON}``: the edits of the issue (bad ranks, methods, keys, geometry) and more."""
    return {name: fn() for name, fn in mutation_edits(plan).items()}


def mutation_edits(plan: dict) -> dict:
    """``{name: () -> edited copy of plan}`` (names do not depend on the plan)."""
    dec = [k for k, l in enumerate(plan["layers"]) if l["method"] == "tucker2"]
    k, fc = dec[0], [i for i, l in enumerate(plan["layers"]) if l["kind"] == "dense"][0]
    one = [i for i, l in enumerate(plan["layers"]) if l["method"] == "none"][0]

    def edit(fn):
        def make():
            d = copy.deepcopy(plan)
            fn(d)
            return d
        return make

    def layer(i, **kv):
        return lambda d: d["layers"][i].update(kv)

    def info(i, **kv):
        return lambda d: d["layers"][i]["info"].update(kv)

    def drop(i, key):
        return lambda d: d["layers"][i].pop(key)

    m = {
        "ranks_500": layer(k, ranks=[500, 500]), "ranks_0_5": layer(k, ranks=[0, 5]),
        "ranks_neg": layer(k, ranks=[-3, -3]), "ranks_null": layer(k, ranks=None),
        "ranks_1e9": layer(k, ranks=[1e9, 16]), "ranks_float": layer(k, ranks=[1.5, 2]),
        "ranks_true": layer(k, ranks=[True, 2]), "ranks_str": layer(k, ranks=["2", "2"]),
        "ranks_one": layer(k, ranks=[2]), "ranks_three": layer(k, ranks=[2, 2, 2]),
        "ranks_empty": layer(k, ranks=[]), "ranks_dict": layer(k, ranks={"a": 1}),
        "ranks_nan": layer(k, ranks=[float("nan"), 2]), "ranks_inf": layer(k, ranks=[float("inf"), 2]),
        "method_cp": layer(k, method="cp"), "method_int": layer(k, method=3),
        "tucker2_dense": layer(fc, method="tucker2", ranks=[2, 2], selected=True),
        "svd_on_3x3": layer(k, method="svd", ranks=[2]),
        "unselected_decomposed": layer(k, selected=False),
        "selected_str": layer(k, selected="yes"),
        "no_info": drop(k, "info"), "no_method": drop(k, "method"), "no_ranks": drop(k, "ranks"),
        "no_name": drop(k, "name"),
        "no_layers": lambda d: d.pop("layers"), "no_config": lambda d: d.pop("config"),
        "no_version": lambda d: d.pop("version"), "version_2": lambda d: d.update(version=2),
        "layers_empty": lambda d: d.update(layers=[]), "layers_dict": lambda d: d.update(layers={}),
        "layer_not_object": lambda d: d["layers"].__setitem__(0, 5),
        "duplicate_layer": lambda d: d["layers"].append(copy.deepcopy(d["layers"][k])),
        "renamed_layer": lambda d: (layer(k, name="layer9.conv")(d), info(k, name="layer9.conv")(d)),
        "name_info_differ": layer(k, name=plan["layers"][one]["name"]),
        "info_unknown_key": info(k, colour="red"),
        "info_channels_str": info(k, in_channels="4"),
        "stride_2": info(k, stride=[2, 2]), "kernel_5": info(k, kernel=[5, 5]),
        "in_channels_8": info(k, in_channels=8), "groups_2": info(k, groups=2),
        "padding_0": info(k, padding=[0, 0, 0, 0]), "dilation_2": info(k, dilation=[2, 2]),
        "input_hw_64": info(k, input_hw=[64, 64]), "input_hw_zero": info(k, input_hw=[0, 0]),
        "kernel_too_big_for_input": info(k, kernel=[99, 99]),
        "stem_role": lambda d: d["layers"][one]["info"]["role"].update(is_stem=not d["layers"][one]["info"]["role"]
                                                                       .get("is_stem", False)),
        "role_unknown": lambda d: d["layers"][k]["info"]["role"].update(colour=1),
        "kind_dense": lambda d: (layer(k, kind="dense")(d), info(k, kind="dense")(d)),
        "meta_input_224": lambda d: d["meta"].update(input_shape=[1, 3, 224, 224]),
        "meta_input_bad": lambda d: d["meta"].update(input_shape="big"),
        "meta_input_tiny": lambda d: d["meta"].update(input_shape=[1, 3, 4, 4]),
        "config_unknown_key": lambda d: d["config"].update(colour="red"),
        "config_ratio_str": lambda d: d["config"].update(ratio="two"),
        "config_mode_bad": lambda d: d["config"].update(mode="mode9"),
        "config_mode_list": lambda d: d["config"].update(mode=["vanilla"]),
        "config_energy_str": lambda d: d["config"].update(energy="high"),
        "config_ranks_float": lambda d: d["config"].update(ranks={"fc": 2.5}),
        "config_not_object": lambda d: d.update(config=[1]),
        "meta_not_object": lambda d: d.update(meta=[1]),
        "params_str": layer(k, params_after="many"),
    }
    return {name: edit(fn) for name, fn in m.items()}


def make(root: str) -> str:
    """Write the lab under ``root`` (good and broken checkpoints, plans, compressed folders, user folders)."""
    import lrd_torch
    from lrd_core import formats
    from lrd_core.layout import PLAN_FILE

    rng = np.random.default_rng(12)
    j = lambda *p: os.path.join(root, *p)  # noqa: E731
    model = lrd_torch.models.resnet18(**KW, seed=0)
    arrays = lrd_torch.state_to_numpy(model)
    for suffix in (".pt", ".ckpt", ".npz"):
        formats.write(arrays, j(f"good{suffix}"))
        _broken(root, j(f"good{suffix}"), suffix, rng)
    wrong = lrd_torch.state_to_numpy(lrd_torch.models.resnet18(num_classes=10, stem="cifar", width=8, seed=0))
    formats.write(wrong, j("wrong.pt"))
    formats.write(wrong, j("wrong.ckpt"))
    nan = dict(arrays)
    nan["layer2.0.conv2.weight"] = nan["layer2.0.conv2.weight"].copy()
    nan["layer2.0.conv2.weight"][0, 0, 0, 0] = np.nan
    formats.write(nan, j("nan.pt"))
    formats.write(nan, j("nan.npz"))
    inf = dict(arrays)
    inf["layer1.0.bn1.running_var"] = inf["layer1.0.bn1.running_var"].copy()
    inf["layer1.0.bn1.running_var"][1] = np.inf
    formats.write(inf, j("inf_bn.ckpt"))
    np.savez(j("pickled.npz"), **{"conv1.weight": np.array([object()], dtype=object)})
    np.savez(j("strings.npz"), **{k: np.full(v.shape, "x") for k, v in arrays.items()})
    # calibration data: NaN inputs, the wrong layout, no labels (fine-tuning needs them), non-integer labels
    np.savez(j("calib_nan.npz"), x=np.full((8, 3, 32, 32), np.nan, np.float32))
    np.savez(j("calib_shape.npz"), x=np.ones((8, 5, 7), np.float32))
    np.savez(j("calib_noy.npz"), x=rng.standard_normal((8, 3, 32, 32)).astype(np.float32))
    np.savez(j("calib_ybad.npz"), x=np.ones((8, 3, 32, 32), np.float32), y=np.full(8, -1.5))
    os.makedirs(j("folder.pt"))
    _write(j("weights.bin"), b"\0" * 64)
    _write(j("afile"), b"a regular file\n")
    for name in ("userdir", "indir"):
        os.makedirs(j(name))
        _write(j(name, "notes.txt"), b"my notes\n")
    _write(j("userdir", "keep.txt"), b"keep me\n")
    formats.write(arrays, j("indir", "m.pt"))
    # plans: the good one, one for the ImageNet stem at 224, and the edited ones
    plan = lrd_torch.plan(model, input_shape=SHAPE, mode="vanilla", ratio=2.0)
    plan.meta.update(model="resnet18", model_kwargs=dict(KW))
    plan.to_json(j("plan.json"))
    big = lrd_torch.models.resnet18(num_classes=10, stem="imagenet", width=4, seed=0)
    imagenet = lrd_torch.plan(big, input_shape=(1, 3, 224, 224), mode="vanilla", ratio=2.0)
    imagenet.meta.update(model="resnet18", model_kwargs=dict(num_classes=10, stem="imagenet", width=4))
    imagenet.to_json(j("plan_imagenet224.json"))
    os.makedirs(j("plans"))
    good = json.loads(open(j("plan.json")).read())
    for name, d in plan_mutations(good).items():
        with open(j("plans", f"{name}.json"), "w") as fh:
            json.dump(d, fh)
    text = open(j("plan.json")).read()
    _write(j("plans", "truncated.json"), text[: len(text) // 2].encode())
    _write(j("plans", "random.json"), rng.integers(0, 256, 2048, dtype=np.uint8).tobytes())
    _write(j("plans", "empty.json"), b"")
    os.makedirs(j("plans", "folder.json"))
    # compressed folders: good ones in both formats and broken ones
    lrd_torch.compress(model, plan)
    lrd_torch.save(model, plan, j("comp_torch"))
    comp = lrd_torch.state_to_numpy(model)
    os.makedirs(j("comp_ms"))
    plan.to_json(j("comp_ms", PLAN_FILE))
    formats.write(comp, j("comp_ms", "model.ckpt"))
    for name, plan_text, weights in (("comp_badplan", text[:100], comp), ("comp_trunc", text, None),
                                     ("comp_noplan", None, comp)):
        os.makedirs(j(name))
        if plan_text is not None:
            _write(j(name, PLAN_FILE), plan_text.encode())
        if weights is not None:
            formats.write(weights, j(name, "model.pt"))
        else:
            data = open(j("comp_torch", "model.pt"), "rb").read()
            _write(j(name, "model.pt"), data[: len(data) // 3])
    os.makedirs(j("comp_nan"))
    plan.to_json(j("comp_nan", PLAN_FILE))
    bad = dict(comp)
    key = next(k for k in bad if k.endswith("weight") and bad[k].ndim == 4)
    bad[key] = np.full_like(bad[key], np.nan)
    formats.write(bad, j("comp_nan", "model.pt"))
    # run folders: a finished torch run (resumed by MindSpore), and runs whose inputs live inside them
    ckpt = j("run_torch", "original", "ckpt-000000003")
    os.makedirs(ckpt)
    formats.write(arrays, os.path.join(ckpt, "model.pt"))
    _write(os.path.join(ckpt, "state.json"), json.dumps({"epochs": 1, "steps_per_epoch": 3, "global_step": 3,
                                                         "history": [], "curve": [], "meta": {}}).encode())
    os.makedirs(j("run_in", "original"))
    formats.write(arrays, j("run_in", "original", "model.pt"))
    os.makedirs(j("run_ft"))
    os.rename(j("comp_torch"), j("run_ft", "finetuned"))
    lrd_torch.save(model, plan, j("comp_torch"))
    return root
