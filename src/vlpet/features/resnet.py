"""CLIP's modified ResNet trunk (OpenAI ``clip/model.py`` ``ModifiedResNet``, data-prep spec §3.4), up to ``layer4``.

Differences from a torchvision ResNet, all kept: a stem of three 3x3 convs (the first with stride 2) followed by a 2x2
average pool instead of one 7x7 conv and a max pool; anti-aliased strided blocks (the stride is an ``AvgPool2d``
after ``conv2``, and in the shortcut an ``AvgPool2d`` before its 1x1 conv); every conv without bias; BatchNorm eps 1e-5.
RN101 = blocks (3, 4, 23, 3), width 64: 224x224 -> (2048, 7, 7). The attention pool is not built: the grid features
are the ``layer4`` output (after the last block's ReLU), and the pool's output was thrown away by the original
extractor. Module and parameter names equal OpenAI's ``visual.*`` names without the prefix, so an OpenAI state dict
loads 1:1; ``timm_to_openai`` maps timm's ByobNet names (``timm/resnet101_clip.openai`` ``model.safetensors``).
"""

from __future__ import annotations

import re

import torch
from torch import nn

RN101_LAYERS = (3, 4, 23, 3)
RN101_WIDTH = 64
EXPANSION = 4


class Bottleneck(nn.Module):
    """1x1 -> 3x3 -> (avg pool when strided) -> 1x1 x4, with an avg-pool + 1x1 conv shortcut when shapes change."""

    def __init__(self, inplanes: int, planes: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.avgpool = nn.AvgPool2d(stride) if stride > 1 else nn.Identity()
        self.conv3 = nn.Conv2d(planes, planes * EXPANSION, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * EXPANSION)
        self.relu = nn.ReLU()
        self.downsample = None
        if stride > 1 or inplanes != planes * EXPANSION:
            # keys "-1" (no parameters), "0", "1" as in OpenAI's OrderedDict
            self.downsample = nn.Sequential()
            self.downsample.add_module("-1", nn.AvgPool2d(stride) if stride > 1 else nn.Identity())
            self.downsample.add_module("0", nn.Conv2d(inplanes, planes * EXPANSION, 1, bias=False))
            self.downsample.add_module("1", nn.BatchNorm2d(planes * EXPANSION))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(self.avgpool(out)))
        return self.relu(out + identity)


class ModifiedResNet(nn.Module):
    """The CLIP image trunk: stem + layer1..layer4; ``forward`` returns the ``layer4`` grid (B, 32*width, H/32, W/32)."""

    def __init__(self, layers: tuple[int, ...] = RN101_LAYERS, width: int = RN101_WIDTH):
        super().__init__()
        self.conv1 = nn.Conv2d(3, width // 2, 3, stride=2, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width // 2)
        self.conv2 = nn.Conv2d(width // 2, width // 2, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(width // 2)
        self.conv3 = nn.Conv2d(width // 2, width, 3, padding=1, bias=False)
        self.bn3 = nn.BatchNorm2d(width)
        self.avgpool = nn.AvgPool2d(2)
        self.relu = nn.ReLU()
        inplanes = width
        for k, blocks in enumerate(layers):
            planes, stride = width * 2 ** k, 1 if k == 0 else 2
            stage = [Bottleneck(inplanes, planes, stride)]
            inplanes = planes * EXPANSION
            stage += [Bottleneck(inplanes, planes) for _ in range(blocks - 1)]
            self.add_module(f"layer{k + 1}", nn.Sequential(*stage))
        self.out_channels = inplanes

    def stem(self, x: torch.Tensor) -> torch.Tensor:
        for conv, bn in ((self.conv1, self.bn1), (self.conv2, self.bn2), (self.conv3, self.bn3)):
            x = self.relu(bn(conv(x)))
        return self.avgpool(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x.type(self.conv1.weight.dtype))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))

    def half_convs(self) -> "ModifiedResNet":
        """OpenAI's ``convert_weights`` on the trunk: conv weights to fp16, BatchNorm kept in fp32 (the CUDA policy)."""
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                module.half()
        return self


def timm_to_openai(key: str) -> str:
    """One timm ByobNet key (``stem.conv1.conv.weight``, ``stages.0.0.conv2_kxk.bn.bias``, ``stages.1.0.shortcut.conv
    .conv.weight``, ``head.*``) as its OpenAI name without ``visual.`` (the inverse of timm's ``_convert_openai_clip``).
    Keys that match none of these come back unchanged (and are then reported as unexpected)."""
    kind = {"conv": "conv", "bn": "bn"}
    if m := re.fullmatch(r"stem\.conv([0-9])\.(conv|bn)\.(.+)", key):
        return f"{kind[m[2]]}{m[1]}.{m[3]}"
    if m := re.fullmatch(r"stages\.([0-9])\.([0-9]+)\.conv([123])_(?:1x1|kxk)\.(conv|bn)\.(.+)", key):
        return f"layer{int(m[1]) + 1}.{m[2]}.{kind[m[4]]}{m[3]}.{m[5]}"
    if m := re.fullmatch(r"stages\.([0-9])\.([0-9]+)\.shortcut\.conv\.(conv|bn)\.(.+)", key):
        return f"layer{int(m[1]) + 1}.{m[2]}.downsample.{0 if m[3] == 'conv' else 1}.{m[4]}"
    if key.startswith("head."):
        return "attnpool." + key[len("head."):]
    return key
