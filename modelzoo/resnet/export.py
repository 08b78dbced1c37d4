"""Export a checkpoint (original or compressed directory) to MINDIR (MindSpore) or ONNX.

    python export.py --config_path config/resnet50_imagenet2012_lrd.yaml --checkpoint_path RUN/finetuned \
        --file_format MINDIR --file_name resnet50_lrd

The MINDIR runs on Ascend 310 through MindSpore Lite (convert with ``converter_lite`` there);
the exported graph is checked against the live network before the script returns.
"""
import os

from lrd_core.errors import ConfigError, LRDError


def main():
    from src.model_utils.config import config
    from lrd_recipe import pipeline, rundir
    from lrd_recipe.runtime import Runtime

    if not config.checkpoint_path:
        raise ConfigError("export.py needs checkpoint_path (a .ckpt/.pt file or a compressed-model directory)")
    rundir.check_run_directory(config, ("export",))          # output_path: before any work
    rt = Runtime(config)
    _, eval_src = rt.sources()
    model = rt.model()
    rt.load_weights(model, config.checkpoint_path)
    result = pipeline.export_model(rt, model, eval_src, print)
    print(f"{os.path.basename(result['path'])}: {result['format']}")


if __name__ == "__main__":
    try:
        main()
    except LRDError as exc:
        raise SystemExit(f"export.py: error: {exc}")
