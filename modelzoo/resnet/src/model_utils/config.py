"""Parse the recipe: ``--config_path FILE.yaml`` then flags (every YAML key is also a ``--key`` flag).

Unknown YAML keys are rejected with the closest known key; the schema and its defaults live in
:mod:`lrd_recipe.config` (shared with the ``lrd`` command line and ``lrd demo``).
"""
import os
import sys

from lrd_recipe import config as recipe
from lrd_core.errors import LRDError

HERE = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEFAULT_CONFIG = os.path.join(HERE, "config", "resnet18_digits_cpu.yaml")


def get_config(argv=None):
    """The recipe config of this process (the digits CPU config when no --config_path is given)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not any(a.split("=")[0] in ("--config_path", "--config") for a in argv):
        argv = ["--config_path", DEFAULT_CONFIG] + argv
    try:
        return recipe.parse(argv, description="ResNet low-rank decomposition recipe", prog=os.path.basename(sys.argv[0]))
    except LRDError as exc:
        sys.exit(f"{os.path.basename(sys.argv[0])}: error: {exc}")


config = get_config() if os.environ.get("LRD_RECIPE_NO_PARSE") != "1" else None
