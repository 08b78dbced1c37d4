"""The whole ViT flow on one config: train -> decompose -> fine-tune (sequential freezing) -> evaluate ->
export; summary.json and curves.png in ``output_path``.

    python pipeline.py --config_path config/vit_tiny_digits_cpu.yaml [--framework torch] [--key value ...]

The other ModelZoo scripts (``train.py``, ``compress.py``, ``eval.py``, ``export.py`` in
``modelzoo/resnet/``) read the same keys and take these configs as they are.
"""
import os
import sys

from lrd_core.errors import LRDError

HERE = os.path.dirname(os.path.abspath(__file__))


def main(argv=None):
    from lrd_recipe import config as recipe, pipeline

    argv = list(sys.argv[1:] if argv is None else argv)
    if not any(a.split("=")[0] in ("--config_path", "--config") for a in argv):
        argv = ["--config_path", os.path.join(HERE, "config", "vit_tiny_digits_cpu.yaml")] + argv
    pipeline.run(recipe.parse(argv, description="Vision Transformer low-rank decomposition recipe",
                              prog="pipeline.py"))


if __name__ == "__main__":
    try:
        main()
    except LRDError as exc:
        raise SystemExit(f"pipeline.py: error: {exc}")
