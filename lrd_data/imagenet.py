"""ImageNet-style class folders (``root/<class>/<image>``), read lazily with Pillow.

Classes are the sorted sub-directory names (label = position), as in MindSpore's
``ImageFolderDataset`` and torchvision's ``ImageFolder``. Training crops a random area
(8%-100%, aspect 3/4-4/3) resized to ``image_size`` with a random flip; evaluation resizes the
shorter side to ``image_size / 0.875`` and takes the centre crop. Pixels are normalised by the
ImageNet channel statistics. Decoding runs on a small thread pool (Pillow releases the GIL).
"""
from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor
from typing import List, Optional, Tuple

import numpy as np

from lrd_core.errors import ConfigError

EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".webp", ".JPEG")
MEAN = np.array([0.485, 0.456, 0.406], np.float32) * 255
STD = np.array([0.229, 0.224, 0.225], np.float32) * 255


def list_folder(root: str) -> Tuple[List[str], np.ndarray, List[str]]:
    """(file paths, labels, class names) of a class-folder tree."""
    if not os.path.isdir(root):
        raise ConfigError(f"image folder {root} does not exist; point data_path at the directory holding "
                          f"one sub-directory per class")
    classes = sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d)))
    if not classes:
        raise ConfigError(f"{root} holds no class sub-directories (expected root/<class>/<image>)")
    files, labels = [], []
    for k, c in enumerate(classes):
        for name in sorted(os.listdir(os.path.join(root, c))):
            if name.endswith(EXTENSIONS):
                files.append(os.path.join(root, c, name))
                labels.append(k)
    if not files:
        raise ConfigError(f"no images ({', '.join(EXTENSIONS[:4])}, ...) under {root}")
    return files, np.asarray(labels, np.int32), classes


class ImageFolder:
    """Lazily decoded class-folder images as a loader source (``get(indices)``)."""

    def __init__(self, root: str, image_size: int = 224, train: bool = True, seed: int = 0,
                 num_classes: Optional[int] = None, workers: int = 4):
        self.files, self.labels, self.classes = list_folder(root)
        self.image_size, self.train, self.seed = int(image_size), train, seed
        self.num_classes = int(num_classes or len(self.classes))
        self._pool = ThreadPoolExecutor(max(1, workers))

    def __len__(self) -> int:
        return len(self.files)

    def _load(self, i: int, rng: Optional[np.random.Generator]) -> np.ndarray:
        from PIL import Image

        with Image.open(self.files[i]) as im:
            im = im.convert("RGB")
            s = self.image_size
            if rng is not None:
                im = _random_resized_crop(im, s, rng)
                if rng.random() < 0.5:
                    im = im.transpose(Image.FLIP_LEFT_RIGHT)
            else:
                short = int(round(s / 0.875))
                w, h = im.size
                scale = short / min(w, h)
                im = im.resize((max(s, round(w * scale)), max(s, round(h * scale))), Image.BILINEAR)
                w, h = im.size
                left, top = (w - s) // 2, (h - s) // 2
                im = im.crop((left, top, left + s, top + s))
            a = np.asarray(im, np.float32)
        return ((a - MEAN) / STD).transpose(2, 0, 1)

    def get(self, idx, rng: Optional[np.random.Generator] = None) -> Tuple[np.ndarray, np.ndarray]:
        """Decode samples ``idx``; training augmentation is drawn from ``rng`` (seeded by the loader)."""
        idx = np.asarray(idx)
        seeds = (rng or np.random.default_rng(self.seed)).integers(0, 2 ** 31, len(idx))
        rngs = [np.random.default_rng(int(s)) if self.train else None for s in seeds]
        x = list(self._pool.map(self._load, [int(i) for i in idx], rngs))
        return np.stack(x).astype(np.float32), self.labels[idx]


def _random_resized_crop(im, size: int, rng, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3)):
    from PIL import Image

    w, h = im.size
    area = w * h
    for _ in range(10):
        target = area * rng.uniform(*scale)
        aspect = math.exp(rng.uniform(math.log(ratio[0]), math.log(ratio[1])))
        cw, ch = int(round(math.sqrt(target * aspect))), int(round(math.sqrt(target / aspect)))
        if 0 < cw <= w and 0 < ch <= h:
            left, top = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
            return im.resize((size, size), Image.BILINEAR, box=(left, top, left + cw, top + ch))
    side = min(w, h)
    left, top = (w - side) // 2, (h - side) // 2
    return im.resize((size, size), Image.BILINEAR, box=(left, top, left + side, top + side))


def write_folder(root: str, images: np.ndarray, labels: np.ndarray, classes: Optional[List[str]] = None) -> str:
    """Write uint8 HWC images as PNG files in class folders (for tests and examples)."""
    from PIL import Image

    classes = classes or [f"class_{k:03d}" for k in range(int(np.max(labels)) + 1)]
    for k, (img, lab) in enumerate(zip(images, labels)):
        d = os.path.join(root, classes[int(lab)])
        os.makedirs(d, exist_ok=True)
        Image.fromarray(np.asarray(img, np.uint8)).save(os.path.join(d, f"img_{k:05d}.png"))
    return root
