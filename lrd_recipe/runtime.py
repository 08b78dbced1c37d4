"""One framework's tools for a recipe config: device set-up, data, model, training, saving, export.

``Runtime(cfg)`` imports only the framework the config names (MindSpore: device and GRAPH/PyNative
mode are set first; with ``run_distribute`` the process joins the msrun / torchrun group).
"""
from __future__ import annotations

import importlib
import os
from typing import Tuple

import numpy as np

# Before torch loads: torch's OpenMP threads spin while they wait, and as soon as another process
# shares the 2 cores a ResNet-18 step took 3.4 s instead of 0.7 s (2 threads; PASSIVE: 0.7 s).
# A user setting wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from lrd_core.errors import ConfigError, DeviceError, MismatchError  # noqa: E402
from lrd_core.freezing import FreezeConfig  # noqa: E402
from lrd_core.schedule import epoch_schedule  # noqa: E402
from lrd_data import AUGMENTS, ArrayData, ImageFolder, Loader, load_cifar10, load_digits  # noqa: E402

from lrd_core.api.state import check_finite  # noqa: E402
from lrd_core.frameworks import adapter  # noqa: E402
from lrd_core.layout import WEIGHT_FILES, PLAN_FILE  # noqa: E402

from .options import freeze_config, optimizer_options, precision_options  # noqa: E402

WEIGHTS = WEIGHT_FILES


class Runtime:
    """Framework modules and data for one run of a recipe config ``cfg`` (see :mod:`lrd_recipe.config`)."""

    def __init__(self, cfg):
        self.cfg = cfg
        self.name = cfg.framework
        if self.name == "mindspore":
            import lrd_mindspore  # noqa: F401  (environment caps before mindspore loads)
            import mindspore as ms
            device_id = os.environ.get("DEVICE_ID")
            try:
                ms.set_device(cfg.device_target, None if device_id is None else int(device_id))
            except RuntimeError as exc:
                raise DeviceError(f"device_target {cfg.device_target} is not available to this MindSpore "
                                  f"install ({str(exc).splitlines()[0][:160]}); use device_target: CPU") from None
            ms.set_context(mode=ms.GRAPH_MODE if cfg.mode_name == "GRAPH" else ms.PYNATIVE_MODE)
            ms.set_seed(cfg.seed)
        elif cfg.device_target != "CPU" and cfg.device_target != "GPU":
            raise ConfigError(f"the torch twin runs on CPU or GPU, not {cfg.device_target}")
        self.fw = adapter(self.name)
        self.train = importlib.import_module(f"lrd_{self.name}.train")
        self.stages = self.fw.multistage
        dist = importlib.import_module(f"lrd_{self.name}.distributed")
        self.dist = dist.init() if cfg.run_distribute else dist.DistContext()
        if self.name == "torch":
            import torch
            torch.manual_seed(cfg.seed)
            self.device = torch.device("cuda", self.dist.local_rank) if cfg.device_target == "GPU" else torch.device("cpu")

    # ------------------------------------------------------------------------------ basics
    @property
    def is_main(self) -> bool:
        return self.dist.is_main

    @property
    def input_shape(self) -> Tuple[int, int, int, int]:
        return (1, 3, self.cfg.image_size, self.cfg.image_size)

    def model(self):
        c = self.cfg
        m = self.fw.models.create_model(c.net_name, **self.model_kwargs(), seed=c.seed)
        return m.to(self.device) if self.name == "torch" else m

    def model_kwargs(self) -> dict:
        """The builder keywords of ``net_name`` from the config: ResNets take ``stem``/``width``, ViTs
        ``image_size``/``patch_size``/``depth``/``drop_rate`` (:mod:`lrd_core.model_options`)."""
        return model_kwargs(self.cfg, self.fw.models.MODELS)

    def load_weights(self, model, path: str):
        """Weights from a checkpoint file, a training checkpoint dir or a compressed-model dir.

        Returns the plan when the source is compressed (the model is rebuilt to match), else None.
        """
        if not os.path.exists(path):
            raise MismatchError(f"checkpoint {path} does not exist")
        if os.path.isdir(path):
            if os.path.isfile(os.path.join(path, PLAN_FILE)):
                self.fw.load(path, model)
                return self.fw.load_plan(path)
            for name in WEIGHTS.values():
                if os.path.isfile(os.path.join(path, name)):
                    path = os.path.join(path, name)
                    break
            else:
                raise MismatchError(f"{path} holds no model.ckpt / model.pt")
        self.fw.load_checkpoint(model, path)
        check_finite(self.fw.state_to_numpy(model), path)
        return None

    def save_weights(self, model, path: str) -> str:
        return self.fw.write_checkpoint(self.fw.state_to_numpy(model), path)

    def params(self, model) -> int:
        from lrd_core.naming import is_num_batches
        return int(sum(v.size for k, v in self.fw.state_to_numpy(model).items()
                       if not is_num_batches(k) and v.dtype.kind == "f"))      # no integer index buffers

    # ------------------------------------------------------------------------------ data
    def sources(self):
        """(train, eval) loader sources (ArrayData or lazily decoded folders)."""
        return sources(self.cfg)

    def native(self) -> bool:
        return native(self.cfg)

    def train_data(self, source):
        """What ``fit`` consumes: a Loader (shared order) or a native MindSpore dataset (this rank's slice)."""
        return train_data(self.cfg, source, self.dist.rank, self.dist.world)

    @staticmethod
    def steps_per_epoch(data) -> int:
        return data.steps_per_epoch if isinstance(data, Loader) else data.get_dataset_size()

    # ------------------------------------------------------------------------------ training
    def schedule(self, data, epochs: int, prefix: str = "") -> np.ndarray:
        c = self.cfg
        g = lambda k: getattr(c, prefix + k)  # noqa: E731
        return epoch_schedule(g("lr_decay_mode"), epochs, self.steps_per_epoch(data), g("lr_max"),
                              g("lr_init"), g("lr_end"), g("warmup_epochs"))

    def freeze(self) -> FreezeConfig:
        return freeze_config(self.cfg)

    def fit(self, model, data, lr, epochs: int, out_dir: str, eval_data=None, plan=None, freeze=None,
            log=print) -> dict:
        c = self.cfg
        progress = None if c.progress == "auto" else c.progress == "true"
        return self.train.fit(model, data, lr, epochs, momentum=c.momentum, weight_decay=c.weight_decay,
                              optimizer=optimizer_options(c), precision=precision_options(c),
                              label_smoothing=c.label_smooth_factor, seed=c.seed, log=log, plan=plan,
                              freeze=freeze, out_dir=out_dir, resume=c.resume,
                              save_every_steps=c.save_checkpoint_steps, save_every_epochs=c.save_checkpoint_epochs,
                              keep=c.keep_checkpoint_max, eval_data=eval_data if c.eval_every_epoch else None,
                              log_every=c.log_every, progress=progress, dist=self.dist)

    def evaluate(self, model, data) -> float:
        return float(self.train.evaluate(model, data, self.cfg.eval_batch_size))


def model_kwargs(c, registry) -> dict:
    """The keywords recipe config ``c`` gives the builder of ``c.net_name`` in ``registry``."""
    from lrd_core.model_options import select

    options = {"num_classes": c.class_num, "stem": c.stem, "width": c.width, "image_size": c.image_size,
               "patch_size": c.patch_size, "depth": c.depth or None, "drop_rate": c.drop_rate}
    return select(registry, c.net_name, {}, options)


def describe_model(c) -> str:
    """``width 32, cifar stem`` (ResNet) or ``patch 4, 12 blocks`` (ViT) for log lines."""
    if c.net_name.startswith("vit"):
        return f"patch {c.patch_size}, {c.depth or 'standard'} blocks, {c.optimizer}"
    return f"width {c.width}, {c.stem} stem"


# ---------------------------------------------------------------------------------- data (no framework set-up)
def _limit(data, n: int):
    return data.take(n) if n and isinstance(data, ArrayData) and n < len(data) else data


def sources(c):
    """(train, eval) loader sources of recipe config ``c`` (ArrayData or lazily decoded folders).

    Raises
    ------
    ConfigError
        A missing ``data_path``, or a dataset whose class count is not ``class_num``.
    """
    if c.dataset == "digits":
        train, test = load_digits(size=c.image_size, seed=c.seed)
    elif c.dataset == "cifar10":
        if not c.data_path:
            raise ConfigError("dataset cifar10 needs data_path (the cifar-10-batches-bin directory)")
        train, test = load_cifar10(c.data_path, True), load_cifar10(c.eval_data_path or c.data_path, False)
    else:
        if not c.data_path:
            raise ConfigError("dataset imagenet2012 needs data_path (train/ class folders) and eval_data_path")
        train = ImageFolder(c.data_path, c.image_size, train=True, seed=c.seed)
        test = ImageFolder(c.eval_data_path or c.data_path, c.image_size, train=False)
        if test.classes != train.classes:
            raise ConfigError(f"eval_data_path {c.eval_data_path} has {len(test.classes)} class folders, "
                              f"data_path {c.data_path} has {len(train.classes)} (or other names); both need "
                              f"the same class folders")
    if train.num_classes != c.class_num:
        where = f" ({c.data_path})" if c.dataset == "imagenet2012" else ""
        raise ConfigError(f"dataset {c.dataset}{where} has {train.num_classes} classes but class_num is "
                          f"{c.class_num}; set class_num: {train.num_classes}")
    return _limit(train, c.train_limit), _limit(test, c.eval_limit)


def native(c) -> bool:
    """Whether recipe config ``c`` trains from a native MindSpore pipeline (else the shared loader)."""
    if c.framework != "mindspore" or c.dataset == "digits" or c.data_backend == "numpy":
        return False
    return c.data_backend == "native" or c.device_target != "CPU"


def train_data(c, source, rank: int = 0, world: int = 1):
    """Rank ``rank``'s slice (of ``world``) of every global training batch: a Loader over ``source``
    or, when :func:`native`, a sharded MindSpore dataset read from ``data_path``."""
    if native(c):
        from lrd_mindspore import data as D
        if c.dataset == "cifar10":
            return D.cifar10(c.data_path, c.batch_size, True, rank, world, seed=c.seed)
        return D.imagenet(c.data_path, c.batch_size, True, c.image_size, rank, world, seed=c.seed)
    aug = c.augment if c.augment != "auto" else ("crop_flip" if c.dataset == "cifar10" else "none")
    return Loader(source, c.batch_size, shuffle=True, seed=c.seed, rank=rank, world=world, augment=AUGMENTS[aug])
