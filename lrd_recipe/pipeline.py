"""The paper's flow as one run: train N1 epochs -> checkpoint -> decompose by a plan -> accuracy right
after decomposition -> (BatchNorm re-calibration) -> fine-tune N2 epochs at a lower LR, optionally
with sequential freezing -> further stages (multi-stage) -> evaluate -> export.

Run directory (``output_path``)::

    original/            ckpt-*/ of the original training, model.ckpt|pt (final weights)
    compressed/          plan.json + weights right after decomposition (before BatchNorm re-calibration)
    finetune/            ckpt-*/ of the fine-tune (stage k > 1: finetune_stage<k>/)
    finetuned/           plan.json + weights of the final net (stage k > 1: stage<k>/)
    export/<file_name>.mindir|onnx
    summary.json (lrd train / train.py: train_summary.json), curves.png

Every step resumes: re-running a killed run continues the interrupted training from its newest
checkpoint (same plan, optimizer state and LR position) and redoes only the cheap steps.
"""
from __future__ import annotations

import importlib
import os
import time
from typing import Callable, Optional

from lrd_core import layout as L
from lrd_core.errors import ConfigError
from lrd_core.multistage import changed_layers, should_continue

from . import aware, report, rundir, skip
from .options import plan_options, stage_config
from .runtime import WEIGHTS, Runtime, describe_model

Log = Callable[[str], None]


def check_checkpoint_path(cfg) -> bool:
    """Whether the run starts from the compressed directory ``checkpoint_path`` (False when unset).

    Raises
    ------
    ConfigError
        ``checkpoint_path`` is set but is not a compressed-model directory (a training run would
        otherwise quietly train or decompose a randomly initialised network instead).
    """
    if not cfg.checkpoint_path:
        return False
    if not L.is_compressed_dir(cfg.checkpoint_path):
        state = "" if os.path.exists(cfg.checkpoint_path) else " (it does not exist)"
        raise ConfigError(f"checkpoint_path {cfg.checkpoint_path} is not a compressed-model directory (plan.json + "
                          f"weights){state}; give an uncompressed checkpoint as pre_trained")
    return True


def _path(rt: Runtime, *parts) -> str:
    return os.path.join(rt.cfg.output_path, *parts)


def _timing(fit: Optional[dict]) -> Optional[float]:
    return None if not fit or not fit["timing"]["steps"] else fit["timing"]["step_ms"]


# ---------------------------------------------------------------------------------------- steps
def train_original(rt: Runtime, train_src, eval_src, log: Log):
    """Build the model, load ``pre_trained`` and train ``epoch_size`` epochs; returns (model, info)."""
    c = rt.cfg
    model = rt.model()
    rt.fw.inspect(model, input_shape=rt.input_shape)        # image_size too small for the network: fail now
    if c.pre_trained:
        if rt.load_weights(model, c.pre_trained) is not None:
            raise ConfigError(f"pre_trained {c.pre_trained} is already compressed; give it as checkpoint_path to "
                              f"fine-tune it, or point pre_trained at an uncompressed checkpoint")
        log(f"  loaded {c.pre_trained}")
    fit = None
    if c.epoch_size:
        data = rt.train_data(train_src)
        log(f"  {c.epoch_size} epochs x {rt.steps_per_epoch(data)} steps, batch {c.batch_size} x {rt.dist.world}, "
            f"lr {c.lr_decay_mode} {c.lr_init} -> {c.lr_max} -> {c.lr_end}")
        if skip.active(c):              # basis convolutions for the first epochs, then folded back (seed 003)
            model, fit = skip.train(rt, model, data, rt.schedule(data, c.epoch_size), _path(rt, L.RUN_ORIGINAL),
                                    eval_src, log)
        else:
            fit = rt.fit(model, data, rt.schedule(data, c.epoch_size), c.epoch_size, _path(rt, L.RUN_ORIGINAL),
                         eval_src, log=log)
    if rt.is_main and not rundir.keeps_pretrained(c):   # also without training: demo parity reads them
        rt.save_weights(model, _path(rt, L.RUN_ORIGINAL, WEIGHTS[rt.name]))
    acc = rt.evaluate(model, eval_src)
    log(f"  accuracy {acc:.4f}")
    return model, {"accuracy": acc, "params": rt.params(model), "fit": fit}


def decompose(rt: Runtime, model, train_src, eval_src, log: Log):
    """Plan, decompose, evaluate (and re-calibrate BatchNorm); returns (plan, info)."""
    c = rt.cfg
    plan = rt.fw.plan(model, input_shape=rt.input_shape, **plan_options(c), **aware.plan_runtime(rt, train_src, eval_src,
                                                                                               log))
    compared = aware.compare_data_aware(rt, model, train_src, eval_src, log) if c.compare_data_aware else {}
    digest = rundir.state_digest(rt.fw.state_to_numpy(model))
    plan.meta.update({"model": c.net_name, "model_kwargs": rt.model_kwargs(), "source_digest": digest})
    if not plan.decomposed():
        raise ConfigError(f"mode {c.compression_mode} at ratio {c.compression_ratio} with ranks x{c.rank_quantization} "
                          f"decomposes no layer of {c.net_name} ({describe_model(c)}); lower rank_quantization")
    saved = rundir.reusable_decomposition(_path(rt, L.RUN_COMPRESSED), plan, digest, rt.name) if c.resume else None
    t0 = time.perf_counter()
    if saved is not None:               # a resumed run: the same weights were decomposed by the same plan
        rt.fw.load(_path(rt, L.RUN_COMPRESSED), model)
        seconds = float(saved.meta.get("seconds_decompose", 0.0))
    else:
        rt.fw.compress(model, plan)
        seconds = time.perf_counter() - t0
    plan.meta["seconds_decompose"] = seconds
    log(plan.summary(all_layers=False))
    acc = rt.evaluate(model, eval_src)
    how = (f"reused the decomposition of {len(plan.decomposed())} layers in {_path(rt, L.RUN_COMPRESSED)} (same plan "
           f"and weights)" if saved is not None else f"decomposed {len(plan.decomposed())} layers in {seconds:.2f}s")
    log(f"  {how}; accuracy right after decomposition {acc:.4f}")
    if rt.is_main and saved is None:    # the net exactly as decomposed (before any re-calibration)
        rt.fw.save(model, plan, _path(rt, L.RUN_COMPRESSED))
    info = {"accuracy_decomposed": acc, "seconds_decompose": seconds,
            "accuracy_recalibrated": recalibrate(rt, model, train_src, eval_src, log), **compared}
    return plan, info


def recalibrate(rt: Runtime, model, train_src, eval_src, log: Log) -> Optional[float]:
    """Re-estimate BatchNorm statistics (``bn_recalibration_batches`` > 0); returns the accuracy after."""
    n = rt.cfg.bn_recalibration_batches
    if not n:
        return None
    used = rt.train.recalibrate_bn(model, train_src, batches=n, batch_size=rt.cfg.batch_size, seed=rt.cfg.seed)
    acc = rt.evaluate(model, eval_src)
    log(f"  BatchNorm statistics re-estimated on {used} batches: accuracy {acc:.4f}")
    return acc


def finetune(rt: Runtime, model, plan, train_src, eval_src, epochs: int, stage: int, log: Log) -> dict:
    """Fine-tune ``epochs`` epochs at the fine-tune schedule with the configured freezing; save the net."""
    c = rt.cfg
    data = rt.train_data(train_src)
    freeze = rt.freeze()
    log(f"  {epochs} epochs x {rt.steps_per_epoch(data)} steps, lr {c.finetune_lr_decay_mode} {c.finetune_lr_init} -> "
        f"{c.finetune_lr_max} -> {c.finetune_lr_end}, freeze {freeze.policy}"
        + (f" every {freeze.every} {freeze.unit}(s)" if freeze.policy == "sequential" else ""))
    fit = rt.fit(model, data, rt.schedule(data, epochs, "finetune_"), epochs, _path(rt, L.finetune_dir(stage)),
                 eval_src, plan=plan, freeze=freeze, log=log)
    acc = rt.evaluate(model, eval_src)
    final = _path(rt, L.finetuned_dir(stage))
    if rt.is_main:
        rt.fw.save(model, plan, final)
    log(f"  accuracy after fine-tuning {acc:.4f}; saved {final}")
    return {"accuracy_finetuned": acc, "fit": fit, "directory": final}


def export_model(rt: Runtime, model, eval_src, log: Log) -> dict:
    """Export the net with the adapter's checked exporter (``lrd_X.export.export``): the file is
    reloaded (MindIR in MindSpore, ONNX in onnxruntime) and compared with the live net."""
    c = rt.cfg
    fmt = c.file_format if rt.name == "mindspore" else "ONNX"
    path = _path(rt, L.RUN_EXPORT, f"{c.file_name}.{fmt.lower()}")
    report = rt.fw.export(model, path, input_shape=(c.export_batch_size,) + rt.input_shape[1:], format=fmt)
    diff = report.get("max_abs_diff")
    log(f"  exported {path}" + ("" if diff is None else f"; max |exported - live| = {diff:.1e}"))
    return {"path": os.path.abspath(path), "format": fmt, "max_abs_diff": diff}


# ---------------------------------------------------------------------------------------- the flow
def run(cfg, log: Log = print, extra: Optional[Callable] = None, only_train: bool = False,
        export: bool = True) -> dict:
    """The whole pipeline for a recipe config; returns the summary (also written to summary.json).

    ``only_train`` stops after the original training (``lrd train``; writes train_summary.json and
    curves.png).
    A compressed-model directory as ``checkpoint_path`` skips training and decomposition, re-calibrates
    BatchNorm (``bn_recalibration_batches``, as right after a decomposition) and fine-tunes it (and
    its further stages).
    """
    t_start = time.perf_counter()
    from_compressed = check_checkpoint_path(cfg)
    rundir.check_run_directory(cfg, rundir.steps_of(only_train, export, from_compressed))   # before any work
    rt = Runtime(cfg)
    say = log if rt.is_main else (lambda *_: None)
    train_src, eval_src = rt.sources()
    do_export = export
    n_steps = 1 if only_train else 3 + do_export + (cfg.stages > 1)
    step = iter(range(1, 10))
    if from_compressed:
        say(f"[{next(step)}/{n_steps}] loading the compressed net {cfg.checkpoint_path} (training and "
            f"decomposition skipped)")
        model = rt.model()
        orig = {"accuracy": None, "params": rt.params(model), "fit": None}
        plan = rt.load_weights(model, cfg.checkpoint_path)
        rt.fw.inspect(model, input_shape=rt.input_shape)    # image_size too small for the network: fail now
        acc = rt.evaluate(model, eval_src)
        say(f"  accuracy {acc:.4f}")
        # compressed/ holds the net before re-calibration: re-calibrate as the one-run flow does
        dec = {"accuracy_decomposed": acc, "seconds_decompose": 0.0,
               "accuracy_recalibrated": recalibrate(rt, model, train_src, eval_src, say)}
        next(step)
    else:
        say(f"[{next(step)}/{n_steps}] training {cfg.net_name} ({describe_model(cfg)}) on {cfg.dataset} "
            f"{cfg.image_size}x{cfg.image_size} in {rt.name}")
        model, orig = train_original(rt, train_src, eval_src, say)
        if only_train:
            summary = {"framework": rt.name, "model": cfg.net_name, "data": f"{cfg.dataset} {cfg.image_size}x"
                       f"{cfg.image_size}", "accuracy_original": orig["accuracy"],
                       "params_original": orig["params"], "step_ms_original": _timing(orig["fit"]),
                       "checkpoint": os.path.abspath(_path(rt, L.RUN_ORIGINAL, WEIGHTS[rt.name])),
                       "runs": [_run("original", orig["fit"], None)], "seconds_total": time.perf_counter() - t_start}
            if rt.is_main:
                report.write(summary, cfg.output_path, L.TRAIN_SUMMARY_FILE)       # + curves.png
            return summary
        say(f"[{next(step)}/{n_steps}] decomposing: {cfg.compression_mode}, {cfg.rank_selection} "
            f"{cfg.compression_ratio}x, final dense {cfg.final_dense_ratio or cfg.compression_ratio}x, "
            f"ranks x{cfg.rank_quantization}")
        plan, dec = decompose(rt, model, train_src, eval_src, say)
    plan0 = plan
    say(f"[{next(step)}/{n_steps}] fine-tuning")
    ft = finetune(rt, model, plan, train_src, eval_src, cfg.finetune_epoch_size, 1, say)
    stages = [{"stage": 1, "params_compressed": rt.params(model), "accuracy_decomposed": dec["accuracy_decomposed"],
               "accuracy_finetuned": ft["accuracy_finetuned"], "plan": os.path.join(ft["directory"], L.PLAN_FILE),
               "ranks": {lp.name: list(lp.ranks) for lp in plan.decomposed()}}]
    runs = [_run("original", orig["fit"], None), _run("fine-tune", ft["fit"], dec["accuracy_decomposed"])]
    runs[1]["accuracy_recalibrated"] = dec["accuracy_recalibrated"]
    if cfg.stages > 1:
        say(f"[{next(step)}/{n_steps}] multi-stage compression ({cfg.stage_rank_selection}, up to {cfg.stages} stages)")
        plan, ft = _more_stages(rt, model, plan, train_src, eval_src, stages, runs, ft, say)
    exp = None
    if do_export:
        say(f"[{next(step)}/{n_steps}] exporting")
        exp = export_model(rt, model, eval_src, say) if rt.is_main else None
    t = plan.totals
    summary = {
        "framework": rt.name, "model": cfg.net_name, "width": cfg.width, "data": f"{cfg.dataset} {cfg.image_size}x"
        f"{cfg.image_size}", "plan": os.path.abspath(stages[-1]["plan"]), "compressed_dir": os.path.abspath(ft["directory"]),
        "accuracy_original": orig["accuracy"], "accuracy_decomposed": dec["accuracy_decomposed"],
        "accuracy_recalibrated": dec["accuracy_recalibrated"], "accuracy_finetuned": ft["accuracy_finetuned"],
        "params_original": orig["params"], "params_compressed": rt.params(model),
        "macs_original": t["macs_before"], "macs_compressed": t["macs_after"],
        "layers_decomposed": len(plan0.decomposed()), "seconds_decompose": dec["seconds_decompose"],
        "step_ms_original": _timing(orig["fit"]), "step_ms_finetune": _timing(ft["fit"]),
        "freeze": cfg.freeze, "stages": stages, "export": exp, "world_size": rt.dist.world,
        "config": {k: v for k, v in vars(cfg).items()}, "runs": runs,
    }
    for key in ("accuracy_decomposed_data_aware", "accuracy_decomposed_data_aware_raw"):
        if key in dec:                  # compare_data_aware: the original weights decomposed data-aware
            summary[key] = dec[key]
    from lrd_core.plan import skipped_footer
    summary["skipped"] = skipped_footer(plan0.layers)     # layers left as they are, and why
    if "calibration" in plan0.meta:
        summary["calibration"] = {k: plan0.meta["calibration"].get(k) for k in ("samples", "batches", "kinds", "seconds")}
    if extra is not None:
        summary.update(extra(rt, model, plan, eval_src) or {})
    summary["seconds_total"] = time.perf_counter() - t_start
    if rt.is_main:
        report.write(summary, cfg.output_path)
        say(report.table(summary))
    return summary


def _run(name: str, fit: Optional[dict], accuracy_start: Optional[float]) -> dict:
    return {"name": name, "curve": (fit or {}).get("curve", []), "history": (fit or {}).get("history", []),
            "accuracy_start": accuracy_start, "timing": (fit or {}).get("timing"),
            "steps_per_epoch": (fit or {}).get("steps_per_epoch")}


def _more_stages(rt: Runtime, model, plan, train_src, eval_src, stages: list, runs: list, ft: dict, say: Log):
    c = rt.cfg
    scfg = stage_config(c)
    for stage in range(2, c.stages + 1):
        new = rt.stages.next_plan(model, plan, scfg, stage)
        go, why = should_continue(plan, new, scfg, stage)
        if not go:
            say(f"  stopping before stage {stage}: {why}")
            break
        changed = changed_layers(plan, new)
        rt.stages.recompress(model, plan, new)
        acc = rt.evaluate(model, eval_src)
        t = new.totals
        say(f"  stage {stage}: re-decomposed {len(changed)} layers, conv/dense params {t['params_after']:,} "
            f"({t['params_before'] / t['params_after']:.2f}x); accuracy right after {acc:.4f}")
        recalibrate(rt, model, train_src, eval_src, say)
        ft = finetune(rt, model, new, train_src, eval_src, c.stage_epoch_size or c.finetune_epoch_size, stage, say)
        stages.append({"stage": stage, "params_compressed": rt.params(model), "accuracy_decomposed": acc,
                       "accuracy_finetuned": ft["accuracy_finetuned"], "changed": changed,
                       "plan": os.path.join(ft["directory"], L.PLAN_FILE),
                       "ranks": {lp.name: list(lp.ranks) for lp in new.decomposed()}})
        runs.append(_run(f"stage {stage}", ft["fit"], acc))
        plan = new
    return plan, ft
