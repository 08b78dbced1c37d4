"""Framework-neutral datasets as NumPy arrays (NCHW float32 images, int32 labels).

``digits`` is the embedded default (scikit-learn's 8x8 digits, upscaled; no download). ``cifar10``
reads the CIFAR-10 binary format; ``imagenet`` lists an ImageNet-style class-folder tree.
Framework adapters wrap these arrays in their own dataset/loader types.
"""
from .arrays import ArrayData, batches
from .digits import load_digits

__all__ = ["ArrayData", "batches", "load_digits"]
