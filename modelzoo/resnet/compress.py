"""Decompose a trained checkpoint by the config's plan and report the accuracy right after.

    python compress.py --config_path config/resnet50_imagenet2012_lrd.yaml --pre_trained RUN/original/model.ckpt

Writes ``output_path/compressed/`` (plan.json + weights; reload with ``lrd_mindspore.load``) and
prints the plan table, the decomposition time and the accuracy before/after (and after BatchNorm
re-calibration when ``bn_recalibration_batches`` > 0).
"""
from lrd_core.errors import ConfigError, LRDError


def main():
    from src.model_utils.config import config
    from lrd_recipe import pipeline, rundir
    from lrd_recipe.runtime import Runtime

    if not config.pre_trained:
        raise ConfigError("compress.py needs pre_trained: the checkpoint of the trained original network")
    rundir.check_run_directory(config, ("compressed",))      # output_path: before any work
    rt = Runtime(config)
    train_src, eval_src = rt.sources()
    model = rt.model()
    if rt.load_weights(model, config.pre_trained) is not None:
        raise ConfigError(f"{config.pre_trained} is already compressed; use train.py --checkpoint_path to fine-tune it")
    print(f"accuracy of {config.pre_trained}: {rt.evaluate(model, eval_src):.4f}")
    plan, info = pipeline.decompose(rt, model, train_src, eval_src, print)
    t = plan.totals
    print(f"params {t['params_before']:,} -> {t['params_after']:,}, MACs {t['macs_before']:,} -> {t['macs_after']:,}; "
          f"wrote {config.output_path}/compressed")


if __name__ == "__main__":
    try:
        main()
    except LRDError as exc:
        raise SystemExit(f"compress.py: error: {exc}")
