"""Classifiers over token ids: a bag of tokens, a 1-D CNN and a bidirectional GRU.

Inputs are integer token ids of shape ``(batch, length)``, right-padded with ``PAD`` (0): a
``PAD`` is never followed by a token. ``PAD`` never changes the output: every model masks it
out (the bag averages over real tokens only, the CNN drops windows that hold no real token, the
GRU reads packed sequences), and each batch is cut to its longest sentence before any work.

These are the small classifiers RobEn (Jones et al., arXiv 2005.01229) puts on top of a robust
encoding; what ids mean (a table of encoded tokens) is the business of ``stalwart.text``. Like
every registered model, each splits into ``features(x)`` and a linear ``head``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from stalwart.models.catalog import MODELS, check

PAD = 0
"""The id of padding; ids of real tokens start at 1."""


def _sequence_shape(model: str, input_shape: tuple[int, ...]) -> int:
    """The padded length of ``input_shape == (length,)``; a ``ConfigError`` for other shapes."""
    check(
        len(input_shape) == 1,
        model,
        "input_shape",
        "must be (length,): one row of token ids per example",
        tuple(input_shape),
    )
    return int(input_shape[0])


def _check_sizes(model: str, **sizes: int) -> None:
    for name, value in sizes.items():
        check(
            isinstance(value, int) and value > 0, model, name, "must be a positive integer", value
        )


def _trimmed(x: Tensor) -> tuple[Tensor, Tensor]:
    """``x`` cut to its longest sentence, and each sentence's number of real tokens."""
    if x.is_floating_point():
        raise TypeError(f"text models read integer token ids; got a {x.dtype} tensor")
    mask = x != PAD
    lengths = mask.sum(dim=1)
    width = max(int(lengths.max()), 1) if len(x) else 1
    return x[:, :width], lengths


class BagOfTokens(nn.Module):
    """The mean of the token embeddings (over real tokens only), then a linear head.

    Logits are additive over tokens given the sentence length n:
    ``logits = b + Σ_i W·E[t_i] / n``, so each token contributes ``W·E[t]/n``. The certifier of
    RobEn (arXiv 2005.01229) uses this to find the worst encoding position by position
    instead of enumerating every combination.

    Args:
        input_shape: ``(length,)``, the padded length of the training inputs.
        n_classes: number of output logits.
        vocab_size: number of token ids, ``PAD`` included.
        embedding_dim: width of the token embeddings.
    """

    def __init__(
        self,
        input_shape: tuple[int, ...],
        n_classes: int,
        *,
        vocab_size: int = 20_000,
        embedding_dim: int = 64,
    ) -> None:
        super().__init__()
        _sequence_shape("bag_of_tokens", input_shape)
        _check_sizes("bag_of_tokens", vocab_size=vocab_size, embedding_dim=embedding_dim)
        self.embedding = nn.Embedding(vocab_size, embedding_dim, padding_idx=PAD)
        self.head = nn.Linear(embedding_dim, n_classes)

    def features(self, x: Tensor) -> Tensor:
        """The mean embedding of the real tokens, shape ``(batch, embedding_dim)``."""
        x, lengths = _trimmed(x)
        mask = (x != PAD).unsqueeze(-1).to(self.embedding.weight.dtype)
        total = (self.embedding(x) * mask).sum(dim=1)
        # An all-PAD row has no token: its mean is taken as zero (logits = bias).
        return total / lengths.clamp(min=1).unsqueeze(-1).to(total.dtype)

    def forward(self, x: Tensor) -> Tensor:
        """Logits of shape ``(batch, n_classes)``."""
        return self.head(self.features(x))

    def token_contributions(self, ids: Tensor, length: int) -> Tensor:
        """Each token's share ``W·E[id] / length`` of the logits, shape ``(len(ids), C)``.

        Computed in float64, so that ``head.bias + Σ contributions`` equals ``forward`` up to
        float32 rounding of the latter.
        """
        weight = self.head.weight.detach().double()
        embedded = self.embedding.weight.detach().double()[ids.to(self.embedding.weight.device)]
        return (embedded @ weight.T / max(int(length), 1)).cpu()


class TextCNN(nn.Module):
    """Embeddings, parallel 1-D convolutions of several widths, max over time, linear head.

    Kim (2014)'s sentence CNN. Each convolution is padded by ``width − 1`` zeros on both
    sides and ``PAD`` embeddings are zeroed, so a window that overlaps the sentence sees the
    same zeros whether they come from ``PAD`` or the convolution's own padding; windows that
    hold no real token are left out of the max. The output is therefore the same for any
    amount of ``PAD``, and a sentence shorter than a width still has windows.

    Args:
        input_shape: ``(length,)``, the padded length of the training inputs.
        n_classes: number of output logits.
        vocab_size: number of token ids, ``PAD`` included.
        embedding_dim: width of the token embeddings.
        channels: filters per convolution width.
        widths: the convolution widths (tokens per window).
        dropout: dropout on the pooled features, in ``[0, 1)``.
    """

    def __init__(
        self,
        input_shape: tuple[int, ...],
        n_classes: int,
        *,
        vocab_size: int = 20_000,
        embedding_dim: int = 64,
        channels: int = 64,
        widths: Sequence[int] = (3, 4, 5),
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        _sequence_shape("text_cnn", input_shape)
        widths = [int(w) for w in widths]
        _check_sizes("text_cnn", vocab_size=vocab_size, embedding_dim=embedding_dim)
        _check_sizes("text_cnn", channels=channels)
        check(
            len(widths) > 0 and all(w > 0 for w in widths),
            "text_cnn",
            "widths",
            "must be a non-empty list of positive integers",
            widths,
        )
        check(0.0 <= dropout < 1.0, "text_cnn", "dropout", "must lie in [0, 1)", dropout)
        self.embedding = nn.Embedding(vocab_size, embedding_dim, padding_idx=PAD)
        self.convolutions = nn.ModuleList(
            nn.Conv1d(embedding_dim, channels, w, padding=w - 1) for w in widths
        )
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(channels * len(widths), n_classes)

    def features(self, x: Tensor) -> Tensor:
        """Max-pooled filter responses, shape ``(batch, channels · len(widths))``."""
        x, lengths = _trimmed(x)
        mask = (x != PAD).unsqueeze(-1).to(self.embedding.weight.dtype)
        embedded = (self.embedding(x) * mask).transpose(1, 2)  # (batch, dim, length)
        pooled = []
        for convolution in self.convolutions:
            width = convolution.kernel_size[0]
            response = torch.relu(convolution(embedded))  # (batch, channels, length + width − 1)
            # Output j reads tokens j−width+1 .. j: it holds a real token iff j < n + width − 1.
            positions = torch.arange(response.shape[-1], device=response.device)
            valid = positions.unsqueeze(0) < (lengths.clamp(min=1) + width - 1).unsqueeze(1)
            response = response.masked_fill(~valid.unsqueeze(1), -torch.inf)
            pooled.append(response.amax(dim=-1))
        return self.dropout(torch.cat(pooled, dim=1))

    def forward(self, x: Tensor) -> Tensor:
        """Logits of shape ``(batch, n_classes)``."""
        return self.head(self.features(x))


class TextGRU(nn.Module):
    """Embeddings, a one-layer bidirectional GRU, the mean of its outputs, linear head.

    Sequences are packed by their real lengths, so neither direction ever reads ``PAD``.

    Args:
        input_shape: ``(length,)``, the padded length of the training inputs.
        n_classes: number of output logits.
        vocab_size: number of token ids, ``PAD`` included.
        embedding_dim: width of the token embeddings.
        hidden: hidden units per direction.
        dropout: dropout on the pooled features, in ``[0, 1)``.
    """

    def __init__(
        self,
        input_shape: tuple[int, ...],
        n_classes: int,
        *,
        vocab_size: int = 20_000,
        embedding_dim: int = 64,
        hidden: int = 64,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        _sequence_shape("text_gru", input_shape)
        _check_sizes("text_gru", vocab_size=vocab_size, embedding_dim=embedding_dim)
        _check_sizes("text_gru", hidden=hidden)
        check(0.0 <= dropout < 1.0, "text_gru", "dropout", "must lie in [0, 1)", dropout)
        self.embedding = nn.Embedding(vocab_size, embedding_dim, padding_idx=PAD)
        self.gru = nn.GRU(embedding_dim, hidden, batch_first=True, bidirectional=True)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(2 * hidden, n_classes)

    def features(self, x: Tensor) -> Tensor:
        """The mean of the GRU's outputs over real tokens, shape ``(batch, 2 · hidden)``."""
        x, lengths = _trimmed(x)
        # An all-PAD row is read as one PAD token (packing needs length >= 1); its output is
        # still independent of how much PAD follows.
        lengths = lengths.clamp(min=1)
        packed = pack_padded_sequence(
            self.embedding(x), lengths.cpu(), batch_first=True, enforce_sorted=False
        )
        outputs, _ = self.gru(packed)
        outputs, _ = pad_packed_sequence(outputs, batch_first=True)  # zeros past each length
        mean = outputs.sum(dim=1) / lengths.to(outputs.device, outputs.dtype).unsqueeze(-1)
        return self.dropout(mean)

    def forward(self, x: Tensor) -> Tensor:
        """Logits of shape ``(batch, n_classes)``."""
        return self.head(self.features(x))


@MODELS.register("bag_of_tokens")
def bag_of_tokens(
    input_shape: tuple[int, ...],
    n_classes: int,
    *,
    vocab_size: int = 20_000,
    embedding_dim: int = 64,
) -> BagOfTokens:
    """Build a :class:`BagOfTokens` over ``vocab_size`` token ids."""
    return BagOfTokens(input_shape, n_classes, vocab_size=vocab_size, embedding_dim=embedding_dim)


@MODELS.register("text_cnn")
def text_cnn(
    input_shape: tuple[int, ...],
    n_classes: int,
    *,
    vocab_size: int = 20_000,
    embedding_dim: int = 64,
    channels: int = 64,
    widths: Sequence[int] = (3, 4, 5),
    dropout: float = 0.0,
) -> TextCNN:
    """Build a :class:`TextCNN` over ``vocab_size`` token ids."""
    return TextCNN(
        input_shape, n_classes, vocab_size=vocab_size, embedding_dim=embedding_dim,
        channels=channels, widths=widths, dropout=dropout,
    )  # fmt: skip


@MODELS.register("text_gru")
def text_gru(
    input_shape: tuple[int, ...],
    n_classes: int,
    *,
    vocab_size: int = 20_000,
    embedding_dim: int = 64,
    hidden: int = 64,
    dropout: float = 0.0,
) -> TextGRU:
    """Build a :class:`TextGRU` over ``vocab_size`` token ids."""
    return TextGRU(
        input_shape, n_classes, vocab_size=vocab_size, embedding_dim=embedding_dim,
        hidden=hidden, dropout=dropout,
    )  # fmt: skip
