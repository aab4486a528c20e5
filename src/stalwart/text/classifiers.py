"""Classifiers that read only encodings: a token table, a torch model, and how to save them.

RobEn (Jones et al., arXiv 2005.01229, §3): robustness can be certified exactly only if the
model sees nothing but the encoding α(x) of a text. A ``TextClassifier`` therefore holds its
encoder and takes *encoded* token lists (``logits``); raw texts go through the encoder first
(``predict``). Encoded tokens become ids through a ``TokenTable`` built from the training
encodings; a token never seen in training is ``UNK``.

The bag-of-tokens model is additive over tokens (``additive``), which lets the certifier take
each position's worst encoding separately instead of enumerating every combination.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from stalwart.data.text import TextSplit
from stalwart.errors import CheckpointError, ConfigError, DataError
from stalwart.io import (
    CHECKPOINT_FORMAT,
    atomic_write_text,
    load_checkpoint,
    load_state,
    save_checkpoint,
)
from stalwart.models import build as build_model
from stalwart.models.text import PAD, BagOfTokens
from stalwart.text.certify import SEPARATOR, split_tokens
from stalwart.text.encoding import TokenEncoder
from stalwart.text.tokens import tokenize

UNK = 1
PAD_TOKEN = "<pad>"
UNK_TOKEN = "<unk>"
TABLE_FORMAT = "stalwart-token-table"
CLASSIFIER_FORMAT = "stalwart-text-classifier"
CLASSIFIER_FILE = "classifier.json"
WEIGHTS_FILE = "model.pt"

MODELS = {"bag": "bag_of_tokens", "cnn": "text_cnn", "gru": "text_gru"}
"""The classifiers over token ids, by short name, with their model-registry names."""


def encode_split(split: TextSplit, encoder: TokenEncoder) -> list[list[str]]:
    """The encoded tokens of each example of ``split``.

    Texts are tokenised exactly as the certifier and the attack tokenise them
    (``stalwart.text.certify.split_tokens``): a pair's two texts are joined by a ``[SEP]``
    token, which no encoding changes.

    Raises:
        DataError: a text holds no token (from ``tokenize``).
    """
    return [encoder.encode_tokens(tokens) for tokens in split_tokens(split)]


class TokenTable:
    """Encoded token -> integer id: ``PAD`` = 0, ``UNK`` = 1, then the training tokens.

    Args:
        tokens: the tokens of ids 2, 3, ... in order (``PAD`` and ``UNK`` are implicit).

    Raises:
        DataError: a token repeats, or is one of the reserved names ``<pad>`` and ``<unk>``.
    """

    def __init__(self, tokens: Sequence[str]) -> None:
        self.tokens: list[str] = [PAD_TOKEN, UNK_TOKEN, *tokens]
        self.index: dict[str, int] = {t: i for i, t in enumerate(self.tokens)}
        if len(self.index) != len(self.tokens):
            repeated = sorted(t for t, n in Counter(self.tokens).items() if n > 1)
            raise DataError(
                f"a token table lists each token once; {repeated[:5]} repeat (the names "
                f"{PAD_TOKEN!r} and {UNK_TOKEN!r} are reserved)"
            )

    @classmethod
    def build(
        cls,
        encoded: Iterable[Sequence[str]],
        *,
        min_count: int = 1,
        max_size: int | None = None,
    ) -> TokenTable:
        """The table of the tokens of ``encoded`` (the training encodings).

        Tokens are ordered by count, most frequent first, ties alphabetically, so the same data
        always gives the same ids.

        Args:
            encoded: encoded token lists, one per training example.
            min_count: a token seen fewer times is left out (it becomes ``UNK``).
            max_size: keep at most this many ids in all (``PAD`` and ``UNK`` included).

        Raises:
            ConfigError: ``min_count`` below 1 or ``max_size`` below 3.
        """
        if min_count < 1:
            raise ConfigError(f"min_count must be at least 1; got {min_count}")
        if max_size is not None and max_size < 3:
            raise ConfigError(f"max_size must be at least 3 (PAD, UNK, one token); got {max_size}")
        counts = Counter(t for tokens in encoded for t in tokens)
        for reserved in (PAD_TOKEN, UNK_TOKEN):
            counts.pop(reserved, None)  # never a real token (tokenize splits '<'), so never kept
        kept = sorted(
            (t for t, n in counts.items() if n >= min_count), key=lambda t: (-counts[t], t)
        )
        if max_size is not None:
            kept = kept[: max_size - 2]
        return cls(kept)

    def __len__(self) -> int:
        return len(self.tokens)

    def __contains__(self, token: object) -> bool:
        return token in self.index and token not in (PAD_TOKEN, UNK_TOKEN)

    def id(self, token: str) -> int:
        """The id of ``token``; ``UNK`` if the table does not hold it."""
        found = self.index.get(token, UNK)
        return UNK if found == PAD else found

    def ids(self, encoded: Sequence[Sequence[str]], max_length: int | None = None) -> Tensor:
        """Token ids ``(len(encoded), max_length)``, right-padded with ``PAD``, cut if longer.

        Args:
            encoded: encoded token lists.
            max_length: the row width; None: the longest list (at least 1).
        """
        width = max_length if max_length is not None else max((len(t) for t in encoded), default=1)
        if width < 1:
            raise ConfigError(f"max_length must be at least 1; got {width}")
        out = torch.full((len(encoded), max(width, 1)), PAD, dtype=torch.long)
        for row, tokens in enumerate(encoded):
            ids = [self.id(t) for t in tokens[:width]]
            if ids:
                out[row, : len(ids)] = torch.tensor(ids, dtype=torch.long)
        return out

    def to_dict(self) -> dict[str, Any]:
        """The table as JSON values."""
        return {"format": TABLE_FORMAT, "tokens": self.tokens[2:]}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TokenTable:
        """A table written by ``to_dict``.

        Raises:
            DataError: ``values`` is not a token table.
        """
        if not isinstance(values, dict) or values.get("format") != TABLE_FORMAT:
            raise DataError("not a stalwart token table (no 'format': 'stalwart-token-table')")
        tokens = values.get("tokens")
        if not isinstance(tokens, list) or not all(isinstance(t, str) for t in tokens):
            raise DataError("a token table's 'tokens' must be a list of strings")
        return cls(tokens)


class EncodedTextClassifier:
    """What every classifier of encodings shares: its encoder, class names and ``predict``.

    Subclasses define ``logits(encoded, batch_size)``; the certifier and the attack call only
    ``encoder``, ``logits`` and (if present) ``additive``.
    """

    encoder: TokenEncoder
    class_names: tuple[str, ...] | None

    def logits(self, encoded: Sequence[Sequence[str]], batch_size: int = 512) -> Tensor:
        """Logits ``(len(encoded), n_classes)`` of encoded token lists, float32 on the CPU."""
        raise NotImplementedError

    def encode_texts(
        self, texts: Sequence[str], texts_b: Sequence[str] | None = None
    ) -> list[list[str]]:
        """The encodings of raw texts (pairs joined by ``[SEP]``), as the model reads them."""
        if isinstance(texts, str):
            raise DataError("predict takes a sequence of texts, not one string")
        if texts_b is None:
            return [self.encoder.encode_tokens(tokenize(t)) for t in texts]
        if len(texts_b) != len(texts):
            raise DataError(f"{len(texts)} texts but {len(texts_b)} second texts of pairs")
        return [
            self.encoder.encode_tokens([*tokenize(a), SEPARATOR, *tokenize(b)])
            for a, b in zip(texts, texts_b, strict=True)
        ]

    def predict(
        self, texts: Sequence[str], texts_b: Sequence[str] | None = None, batch_size: int = 512
    ) -> np.ndarray:
        """Predicted class ids of raw texts: tokenise, encode, classify.

        Raises:
            DataError: a text holds no token.
        """
        encoded = self.encode_texts(texts, texts_b)
        return self.logits(encoded, batch_size=batch_size).argmax(dim=1).numpy()

    def additive(self) -> tuple[Tensor, Callable[[Sequence[str], int], Tensor]] | None:
        """``(bias, contributions)`` if logits are additive over tokens; None otherwise."""
        return None


class TextClassifier(EncodedTextClassifier):
    """An encoder, a token table and a torch model over token ids.

    Args:
        encoder: the token encoder the model reads (a RobEn ``Encoding`` or the identity).
        table: encoded token -> id.
        module: the torch model, ids ``(N, L)`` -> logits ``(N, C)``; ``PAD`` must not change
            its output.
        model: the model's registry name (``bag_of_tokens``, ``text_cnn``, ``text_gru``).
        params: the registry parameters it was built with (to rebuild it on load).
        input_length: the padded length it was built for (its registry ``input_shape``).
        max_length: tokens read per example (the rest is cut); None reads every token.
        class_names: readable class names, if known.
        history: ``fit``'s per-epoch records, if it was trained here.
    """

    kind = "tokens"

    def __init__(
        self,
        encoder: TokenEncoder,
        table: TokenTable,
        module: nn.Module,
        *,
        model: str,
        params: dict[str, Any] | None = None,
        input_length: int = 1,
        max_length: int | None = None,
        class_names: Sequence[str] | None = None,
        history: list[dict[str, Any]] | None = None,
    ) -> None:
        self.encoder = encoder
        self.table = table
        self.module = module
        self.model = model
        self.params = dict(params or {})
        self.input_length = int(input_length)
        self.max_length = max_length
        self.class_names = tuple(class_names) if class_names is not None else None
        self.history = list(history or [])

    @property
    def n_classes(self) -> int:
        """The number of logits."""
        return int(self.module.head.out_features)

    @property
    def device(self) -> torch.device:
        """Where the model's weights are."""
        return next(self.module.parameters()).device

    def ids(self, encoded: Sequence[Sequence[str]]) -> Tensor:
        """The model's input for ``encoded``: ids cut to ``max_length``, padded to the longest."""
        longest = max((len(t) for t in encoded), default=1)
        width = longest if self.max_length is None else min(longest, self.max_length)
        return self.table.ids(encoded, max(width, 1))

    def logits(self, encoded: Sequence[Sequence[str]], batch_size: int = 512) -> Tensor:
        """Logits ``(len(encoded), n_classes)``, float32 on the CPU, in eval mode, no grad."""
        if batch_size < 1:
            raise ConfigError(f"batch_size must be at least 1; got {batch_size}")
        if len(encoded) == 0:
            return torch.zeros(0, self.n_classes)
        was_training = self.module.training
        self.module.eval()
        device = self.device
        parts = []
        try:
            with torch.no_grad():
                for start in range(0, len(encoded), batch_size):
                    x = self.ids(encoded[start : start + batch_size]).to(device)
                    parts.append(self.module(x).float().cpu())
        finally:
            self.module.train(was_training)
        return torch.cat(parts)

    def additive(self) -> tuple[Tensor, Callable[[Sequence[str], int], Tensor]] | None:
        """The bag model's logits as ``bias + Σ_i contributions(tokens, n)[i]``; else None.

        ``contributions(tokens, length)`` gives each token's ``W·E[t]/length`` (float64,
        shape ``(len(tokens), C)``): tokens may be any encodings (the certifier passes every
        option of every position at once), ``length`` is the sentence's number of tokens. Exact
        only when the model reads every token, so a bag with ``max_length`` set returns None
        (the certifier then enumerates). This is what lets RobEn's certificate (arXiv
        2005.01229, §3) run without its enumeration cap.
        """
        if not isinstance(self.module, BagOfTokens) or self.max_length is not None:
            return None
        module = self.module
        bias = module.head.bias.detach().double().cpu()

        def contributions(tokens: Sequence[str], length: int) -> Tensor:
            ids = torch.tensor([self.table.id(t) for t in tokens], dtype=torch.long)
            return module.token_contributions(ids, length)

        return bias, contributions

    # --- saving -------------------------------------------------------------------------

    def save(self, folder: str | Path) -> Path:
        """Write the weights (``model.pt``) and the table and settings (``classifier.json``).

        The encoder is not saved here: the caller saves it (an encoding is large and shared by
        many classifiers) and hands it back to ``load``.
        """
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().cpu() for k, v in self.module.state_dict().items()}
        save_checkpoint(folder / WEIGHTS_FILE, {"format": CHECKPOINT_FORMAT, "model": state})
        description = {
            "format": CLASSIFIER_FORMAT,
            "kind": self.kind,
            "model": self.model,
            "params": self.params,
            "input_length": self.input_length,
            "n_classes": self.n_classes,
            "max_length": self.max_length,
            "class_names": list(self.class_names) if self.class_names else None,
            "encoder": getattr(self.encoder, "name", type(self.encoder).__name__),
            "table": self.table.to_dict(),
            "history": self.history,
        }
        atomic_write_text(folder / CLASSIFIER_FILE, json.dumps(description))
        return folder

    @classmethod
    def load(cls, folder: str | Path, encoder: TokenEncoder) -> TextClassifier:
        """Read a classifier written by ``save``; ``encoder`` is the one it was trained with.

        Raises:
            DataError: ``folder`` holds no such classifier, or a damaged one.
            CheckpointError: the weights do not match the settings.
        """
        folder = Path(folder)
        description = read_description(folder, cls.kind)
        try:
            table = TokenTable.from_dict(description["table"])
            module = build_model(
                description["model"],
                ((description["input_length"],), description["n_classes"]),
                **description["params"],
            )
        except (KeyError, TypeError, ConfigError, DataError) as error:
            raise DataError(f"{folder / CLASSIFIER_FILE} is damaged: {error}") from None
        load_weights(module, folder)
        module.eval()
        return cls(
            encoder, table, module, model=description["model"], params=description["params"],
            input_length=description["input_length"], max_length=description["max_length"],
            class_names=description.get("class_names"), history=description.get("history"),
        )  # fmt: skip


def read_description(folder: Path, kind: str | None = None) -> dict[str, Any]:
    """The ``classifier.json`` of a saved classifier (of ``kind``, if given).

    Raises:
        DataError: it is missing, not JSON, not a classifier description, or of another kind.
    """
    path = folder / CLASSIFIER_FILE
    if not path.is_file():
        raise DataError(f"no saved text classifier in {folder} (no {CLASSIFIER_FILE})")
    try:
        description = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise DataError(f"{path} cannot be read ({error}); train the classifier again") from None
    if not isinstance(description, dict) or description.get("format") != CLASSIFIER_FORMAT:
        raise DataError(f"{path} is not a stalwart text classifier description")
    if kind is not None and description.get("kind") != kind:
        raise DataError(
            f"{path} holds a classifier of kind {description.get('kind')!r}, not {kind!r}; "
            "load it with stalwart.text.training.load_text_classifier"
        )
    return description


def load_weights(module: nn.Module, folder: Path) -> None:
    """Load ``folder/model.pt`` (written by ``save``) into ``module``.

    Raises:
        CheckpointError: the file is damaged or does not fit ``module``.
    """
    path = folder / WEIGHTS_FILE
    state = load_checkpoint(path)
    if state.get("format") != CHECKPOINT_FORMAT or "model" not in state:
        raise CheckpointError(f"{path} is not a stalwart classifier checkpoint")
    load_state(module, state["model"], "classifier", path)
