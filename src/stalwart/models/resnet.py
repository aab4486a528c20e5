"""ResNet-10/18/34 with BasicBlocks and a variable width.

Follows the "ResNet-10 with varied width" used to study overparameterisation and worst-group
error in Sagawa et al. 2020, "An Investigation of Why Overparameterization Exacerbates
Spurious Correlations" (arXiv:2005.04345): four stages of ``width, 2*width, 4*width,
8*width`` channels, where ``width=64`` is the standard ResNet.
"""

from __future__ import annotations

from torch import Tensor, nn

from stalwart.models.catalog import MODELS, check, image_shape

BLOCKS_PER_STAGE = {10: (1, 1, 1, 1), 18: (2, 2, 2, 2), 34: (3, 4, 6, 3)}
"""Blocks in each of the four stages, by total depth (2 + 2 * total blocks)."""

LARGE_IMAGE = 128
"""Inputs whose smaller side is at least this get the ImageNet stem (7x7/2 conv, max-pool)."""


class BasicBlock(nn.Module):
    """Two 3x3 conv + BatchNorm layers with a residual connection (He et al. 2016).

    Args:
        in_channels: channels of the input.
        out_channels: channels of the output.
        stride: stride of the first conv; 2 halves the spatial size.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU()
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )

    def forward(self, x: Tensor) -> Tensor:
        """Apply the block."""
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class ResNet(nn.Module):
    """ResNet with four stages of BasicBlocks, global average pooling and a linear head.

    Small images get a 3x3 stride-1 stem and no max-pool; images with a side of at least
    ``LARGE_IMAGE`` get the ImageNet stem. Stages after the first halve the spatial size only
    while it is at least 4, so 8x8 inputs keep a 2x2 map.

    Args:
        input_shape: ``(channels, height, width)`` of one image.
        n_classes: number of output logits.
        width: channels of the first stage; stage ``i`` has ``width * 2**i``.
        depth: 10, 18 or 34, as in ResNet-10/18/34.

    Raises:
        ConfigError: if ``input_shape`` is not an image shape, ``width`` is not positive or
            ``depth`` is not one of the allowed values.
    """

    def __init__(
        self, input_shape: tuple[int, ...], n_classes: int, *, width: int = 16, depth: int = 10
    ) -> None:
        super().__init__()
        channels, *spatial = image_shape("resnet", input_shape)
        check(width > 0, "resnet", "width", "must be a positive integer", width)
        check(
            depth in BLOCKS_PER_STAGE,
            "resnet",
            "depth",
            f"must be one of {sorted(BLOCKS_PER_STAGE)}",
            depth,
        )
        side = min(spatial)
        if side >= LARGE_IMAGE:
            stem: list[nn.Module] = [nn.Conv2d(channels, width, 7, 2, padding=3, bias=False)]
            pool: list[nn.Module] = [nn.MaxPool2d(3, 2, padding=1)]
            side = (side + 3) // 4
        else:
            stem, pool = [nn.Conv2d(channels, width, 3, padding=1, bias=False)], []
        layers = [*stem, nn.BatchNorm2d(width), nn.ReLU(), *pool]
        channels = width
        for stage, n_blocks in enumerate(BLOCKS_PER_STAGE[depth]):
            out = width * 2**stage
            stride = 2 if stage > 0 and side >= 4 else 1
            side = (side + stride - 1) // stride
            for block in range(n_blocks):
                layers.append(BasicBlock(channels, out, stride if block == 0 else 1))
                channels = out
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(channels, n_classes)

    def features(self, x: Tensor) -> Tensor:
        """Globally pooled activations of the last stage, shape ``(batch, 8 * width)``."""
        return self.body(x)

    def forward(self, x: Tensor) -> Tensor:
        """Logits of shape ``(batch, n_classes)``."""
        return self.head(self.features(x))


@MODELS.register("resnet")
def resnet(
    input_shape: tuple[int, ...], n_classes: int, *, width: int = 16, depth: int = 10
) -> ResNet:
    """Build a ResNet-``depth`` (10, 18 or 34) whose first stage has ``width`` channels."""
    return ResNet(input_shape, n_classes, width=width, depth=depth)
