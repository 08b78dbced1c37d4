"""lrd_recipe: the train -> decompose -> fine-tune -> export engine (ModelZoo-style recipe).

* :mod:`lrd_recipe.config`: the recipe keys (YAML file, flags, defaults) and their validation;
  :mod:`lrd_recipe.options` turns them into plan, freezing and stage options.
* :mod:`lrd_recipe.runtime`: one framework's device set-up, data, model, trainer for a config.
* :mod:`lrd_recipe.pipeline`: the flow itself (also behind ``lrd train/finetune/multistage/pipeline``).
* :mod:`lrd_recipe.report`: the summary table, ``summary.json`` and ``curves.png``.
* :mod:`lrd_recipe.demo`: the settings of ``lrd demo`` and its cross-framework parity check.

The run directory's file names are in :mod:`lrd_core.layout`.
"""
