"""A small convolutional network for image inputs."""

from __future__ import annotations

from typing import Literal

from torch import Tensor, nn

from stalwart.models.catalog import MODELS, check, image_shape

HEADS = ("average", "flatten")


class CNN(nn.Module):
    """Blocks of conv3x3 + ReLU + 2x2 max-pool, then a linear head on the last block.

    Block ``i`` has ``width * 2**i`` channels. A block pools only while the smaller spatial
    side stays at least 2 after pooling, so small inputs (8x8) work at any depth.

    The head reads either the globally averaged channels (``average``: few parameters, blind to
    where a feature lies, so a shallow narrow network learns slowly) or every position of the
    last block (``flatten``: the LeNet-style head, which learns a 28×28 task in one epoch).

    Args:
        input_shape: ``(channels, height, width)`` of one image.
        n_classes: number of output logits.
        width: channels of the first block.
        depth: number of conv blocks.
        head: ``average`` (global average pooling) or ``flatten`` (see above).

    Raises:
        ConfigError: if ``input_shape`` is not an image shape, ``width``/``depth`` is not
            positive or ``head`` is not one of ``HEADS``.
    """

    def __init__(
        self,
        input_shape: tuple[int, ...],
        n_classes: int,
        *,
        width: int = 32,
        depth: int = 2,
        head: Literal["average", "flatten"] = "average",
    ) -> None:
        super().__init__()
        channels, *spatial = image_shape("cnn", input_shape)
        check(width > 0, "cnn", "width", "must be a positive integer", width)
        check(depth > 0, "cnn", "depth", "must be a positive integer", depth)
        check(head in HEADS, "cnn", "head", f"must be one of {list(HEADS)}", head)
        side = min(spatial)
        height, breadth = spatial
        layers: list[nn.Module] = []
        for i in range(depth):
            out = width * 2**i
            layers += [nn.Conv2d(channels, out, 3, padding=1), nn.ReLU()]
            if side // 2 >= 2:
                layers.append(nn.MaxPool2d(2))
                side, height, breadth = side // 2, height // 2, breadth // 2
            channels = out
        if head == "average":
            layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        else:
            layers.append(nn.Flatten())
            channels *= height * breadth
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(channels, n_classes)

    def features(self, x: Tensor) -> Tensor:
        """Activations of the last block that the head reads.

        Pooled to ``(batch, channels)``, or flattened to ``(batch, channels * height * width)``.
        """
        return self.body(x)

    def forward(self, x: Tensor) -> Tensor:
        """Logits of shape ``(batch, n_classes)``."""
        return self.head(self.features(x))


@MODELS.register("cnn")
def cnn(
    input_shape: tuple[int, ...],
    n_classes: int,
    *,
    width: int = 32,
    depth: int = 2,
    head: Literal["average", "flatten"] = "average",
) -> CNN:
    """Build a :class:`CNN` with ``depth`` blocks starting at ``width`` channels."""
    return CNN(input_shape, n_classes, width=width, depth=depth, head=head)
