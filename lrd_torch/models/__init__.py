"""Model zoo of the torch adapter: a registry (``create_model``, ``register_model``, ``list_models``).

ResNet 18/34/50/101/152 with an ImageNet or CIFAR stem (torchvision names) and Vision Transformers
(ViT-Ti/S/B at patch 16, any ``image_size``/``patch_size``; separate q/k/v projections); same structure,
names and initial weights as the other framework's.
"""
from lrd_core.registry import ModelRegistry

from .resnet import BasicBlock, Bottleneck, ResNet, resnet18, resnet34, resnet50, resnet101, resnet152
from .vit import VisionTransformer, vit_b_16, vit_small, vit_tiny

REGISTRY = ModelRegistry("torch", [resnet18, resnet34, resnet50, resnet101, resnet152, vit_tiny, vit_small,
                                         vit_b_16])
register_model, create_model, list_models, MODELS = REGISTRY.register, REGISTRY.create, REGISTRY.list, REGISTRY
# the public builders remember how each model was built (lrd_core.registry.model_spec)
resnet18, resnet34, resnet50, resnet101, resnet152, vit_tiny, vit_small, vit_b_16 = (
    REGISTRY.builder(n) for n in ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "vit_tiny",
                                  "vit_small", "vit_b_16"))

__all__ = ["REGISTRY", "MODELS", "register_model", "create_model", "list_models", "BasicBlock", "Bottleneck",
           "ResNet", "resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "VisionTransformer", "vit_tiny",
           "vit_small", "vit_b_16"]
