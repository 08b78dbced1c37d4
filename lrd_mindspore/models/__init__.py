"""Model zoo: ResNet 18/34/50/101/152 with ImageNet or CIFAR stem (torchvision names)."""
from .resnet import (MODELS, BasicBlock, Bottleneck, ResNet, create_model, resnet18, resnet34,
                     resnet50, resnet101, resnet152)

__all__ = ["MODELS", "BasicBlock", "Bottleneck", "ResNet", "create_model", "resnet18",
           "resnet34", "resnet50", "resnet101", "resnet152"]
