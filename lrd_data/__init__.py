"""Framework-neutral datasets as NumPy arrays (NCHW float32 images, int32 labels).

``digits`` is the embedded default (scikit-learn's 8x8 digits, upscaled; no download). ``cifar10``
reads the CIFAR-10 binary format; ``imagenet`` lists an ImageNet-style class-folder tree.
Framework adapters wrap these arrays in their own dataset/loader types.
"""
from .arrays import ArrayData, batches
from .cifar10 import load_cifar10, write_cifar10
from .digits import load_digits
from .imagenet import ImageFolder, write_folder
from .loader import Loader, eval_loader
from .transforms import AUGMENTS, random_crop_flip

__all__ = ["ArrayData", "batches", "load_digits", "load_cifar10", "write_cifar10", "ImageFolder", "write_folder",
           "Loader", "eval_loader", "AUGMENTS", "random_crop_flip"]
