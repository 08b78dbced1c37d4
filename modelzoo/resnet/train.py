"""Train ResNet (MindSpore ModelZoo layout): the original network, or fine-tune a compressed one.

    python train.py --config_path config/resnet50_imagenet2012_train.yaml [--key value ...]
    python train.py --config_path config/resnet50_imagenet2012_lrd.yaml --checkpoint_path RUN/compressed

Without ``checkpoint_path`` the original network trains ``epoch_size`` epochs (from ``pre_trained``
if given) into ``output_path/original/``. With ``checkpoint_path`` pointing at a compressed-model
directory (``compress.py`` output) its BatchNorm statistics are re-calibrated (``bn_recalibration_batches``,
as ``pipeline.py`` does right after decomposing) and it is fine-tuned ``finetune_epoch_size`` epochs with its own
LR schedule and the configured freezing (and ``stages`` > 1 runs multi-stage compression).
``framework: torch`` runs the torch twin on the same keys. Interrupted runs resume from their
newest checkpoint. Data parallel: ``scripts/run_distribute_train.sh``.
"""
from lrd_core.errors import LRDError


def main():
    from src.model_utils.config import config
    from lrd_recipe import pipeline

    compressed = pipeline.check_checkpoint_path(config)     # a wrong checkpoint_path fails here, before any work
    pipeline.run(config, only_train=not compressed, export=False)


if __name__ == "__main__":
    try:
        main()
    except LRDError as exc:
        raise SystemExit(f"train.py: error: {exc}")
