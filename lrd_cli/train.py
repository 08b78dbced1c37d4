"""``lrd train | finetune | multistage | pipeline``: the training recipe from the command line.

All four take the recipe keys of :mod:`lrd_recipe.config` as flags (``--lr_max`` or ``--lr-max``)
and ``--config FILE.yaml`` (the ModelZoo recipe files in ``modelzoo/resnet/config`` work as is);
flags override the file. They differ only in which part of the flow runs:

``train``       the original network for ``epoch_size`` epochs (resumable), nothing else;
``finetune``    decompose ``pre_trained`` (or fine-tune a compressed directory given as
                ``checkpoint_path``), report accuracy right after, fine-tune, export;
``multistage``  like finetune, then further compress -> fine-tune stages (default 3 stages);
``pipeline``    train -> decompose -> fine-tune [-> stages] -> export, the paper's flow.
"""
from __future__ import annotations

import argparse

from lrd_core.errors import ConfigError

from lrd_recipe import config as recipe

COMMANDS = {
    "train": ("train the original network (resumable checkpoints, logs, curves)", {}),
    "finetune": ("decompose a trained checkpoint by a plan and fine-tune it (freezing, export)",
                 {"epoch_size": 0}),
    "multistage": ("multi-stage compression: compress -> fine-tune, repeated on the factors",
                   {"epoch_size": 0, "stages": 3}),
    "pipeline": ("train -> decompose -> fine-tune [-> more stages] -> export on one config", {}),
}


def add(sub) -> None:
    """Register the training subcommands on the ``lrd`` parser."""
    for name, (text, defaults) in COMMANDS.items():
        p = sub.add_parser(name, help=text, description=f"{text}. Keys not given come from --config, "
                           f"then from the built-in defaults.", formatter_class=argparse.ArgumentDefaultsHelpFormatter,
                           allow_abbrev=False)          # --lr_ma is an error, not --lr_max
        p.add_argument("--config", "--config_path", dest="config_path", default=None,
                       help="recipe YAML file (e.g. modelzoo/resnet/config/resnet18_digits_cpu.yaml)")
        p.add_argument("--out", dest="output_path", default=argparse.SUPPRESS, help="run directory (= --output_path)")
        recipe.add_arguments(p, defaults, suppress=True)
        p.set_defaults(func=_runner(name, defaults))


def _runner(name: str, defaults: dict):
    def run(args) -> int:
        from lrd_recipe import pipeline

        cfg = recipe.resolve(args, defaults)
        compressed = pipeline.check_checkpoint_path(cfg)        # a wrong checkpoint_path fails before any work
        if name in ("finetune", "multistage") and not (cfg.pre_trained or compressed or cfg.epoch_size):
            raise ConfigError(f"lrd {name} needs trained weights: --pre_trained CHECKPOINT (uncompressed) or "
                              f"--checkpoint_path COMPRESSED_DIR, or --epoch_size N to train first")
        pipeline.run(cfg, only_train=(name == "train"))
        return 0
    return run
