"""The whole flow on one config: train N1 epochs -> checkpoint -> decompose -> accuracy right after ->
fine-tune N2 epochs (lower peak LR, optional sequential freezing) [-> further stages] -> evaluate ->
export; summary.json and curves.png in ``output_path``.

    python pipeline.py --config_path config/resnet18_digits_cpu.yaml
"""
from lrd_core.errors import LRDError


def main():
    from src.model_utils.config import config
    from lrd_recipe import pipeline

    pipeline.run(config)


if __name__ == "__main__":
    try:
        main()
    except LRDError as exc:
        raise SystemExit(f"pipeline.py: error: {exc}")
