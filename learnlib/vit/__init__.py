"""The Vision Transformer family: the ViT (`model`), the port of chapter 02's Paddle ViT (`port`) and DINOv2.

`learnlib.vit.paddle`, the PaddlePaddle model itself, is imported only explicitly
(`from learnlib.vit import paddle`), so importing this package never loads paddle.
Importing it registers every model of the family (`vit_*`, `paddle_vit_base`, `dinov2_*`).
"""

from learnlib.vit.dinov2 import DinoV2, dinov2_vitl14_reg, load_dinov2
from learnlib.vit.model import ClassifierMlp, VisionTransformer, ViT, patchify, zero_one_layernorm_init
from learnlib.vit.port import from_paddle_state_dict, torch_to_paddle_name

__all__ = [
    "ClassifierMlp",
    "DinoV2",
    "ViT",
    "VisionTransformer",
    "dinov2_vitl14_reg",
    "from_paddle_state_dict",
    "load_dinov2",
    "patchify",
    "torch_to_paddle_name",
    "zero_one_layernorm_init",
]
