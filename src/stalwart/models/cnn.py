"""A small convolutional network for image inputs."""

from __future__ import annotations

from torch import Tensor, nn

from stalwart.models.catalog import MODELS, check, image_shape


class CNN(nn.Module):
    """Blocks of conv3x3 + ReLU + 2x2 max-pool, then global average pooling and a head.

    Block ``i`` has ``width * 2**i`` channels. A block pools only while the smaller spatial
    side stays at least 2 after pooling, so small inputs (8x8) work at any depth.

    Args:
        input_shape: ``(channels, height, width)`` of one image.
        n_classes: number of output logits.
        width: channels of the first block.
        depth: number of conv blocks.

    Raises:
        ConfigError: if ``input_shape`` is not an image shape or ``width``/``depth`` is not
            positive.
    """

    def __init__(
        self, input_shape: tuple[int, ...], n_classes: int, *, width: int = 32, depth: int = 2
    ) -> None:
        super().__init__()
        channels, *spatial = image_shape("cnn", input_shape)
        check(width > 0, "cnn", "width", "must be a positive integer", width)
        check(depth > 0, "cnn", "depth", "must be a positive integer", depth)
        side = min(spatial)
        layers: list[nn.Module] = []
        for i in range(depth):
            out = width * 2**i
            layers += [nn.Conv2d(channels, out, 3, padding=1), nn.ReLU()]
            if side // 2 >= 2:
                layers.append(nn.MaxPool2d(2))
                side //= 2
            channels = out
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(channels, n_classes)

    def features(self, x: Tensor) -> Tensor:
        """Pooled activations of the last block, shape ``(batch, width * 2**(depth - 1))``."""
        return self.body(x)

    def forward(self, x: Tensor) -> Tensor:
        """Logits of shape ``(batch, n_classes)``."""
        return self.head(self.features(x))


@MODELS.register("cnn")
def cnn(input_shape: tuple[int, ...], n_classes: int, *, width: int = 32, depth: int = 2) -> CNN:
    """Build a :class:`CNN` with ``depth`` blocks starting at ``width`` channels."""
    return CNN(input_shape, n_classes, width=width, depth=depth)
