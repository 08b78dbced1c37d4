"""Evaluate a checkpoint: an original weights file or a compressed-model directory.

    python eval.py --config_path config/resnet18_cifar10.yaml --checkpoint_path RUN/finetuned
"""
from lrd_core.errors import ConfigError, LRDError


def main():
    from src.model_utils.config import config
    from lrd_recipe.runtime import Runtime

    if not config.checkpoint_path:
        raise ConfigError("eval.py needs checkpoint_path (a .ckpt/.pt file or a compressed-model directory)")
    rt = Runtime(config)
    _, eval_src = rt.sources()
    model = rt.model()
    plan = rt.load_weights(model, config.checkpoint_path)
    acc = rt.evaluate(model, eval_src)
    kind = "original" if plan is None else f"compressed ({len(plan.decomposed())} layers decomposed)"
    print(f"{config.checkpoint_path}: {kind}, {rt.params(model):,} parameters, top-1 accuracy {acc:.4f} "
          f"on {len(eval_src)} {config.dataset} images ({rt.name})")


if __name__ == "__main__":
    try:
        main()
    except LRDError as exc:
        raise SystemExit(f"eval.py: error: {exc}")
