"""Train a classifier of encodings through stalwart's own ``fit``, with any registered method.

RobEn (Jones et al., arXiv 2005.01229) trains its classifier on encodings α(x) only. Here the
encoded token lists become a ``GroupedDataset`` (token ids for the bag, CNN and GRU; frozen
MiniLM embeddings for the linear probe) with the split's labels and groups, and training goes
through ``stalwart.fit``: the method is a registered name (``erm``, ``group_dro``, a recipe
such as ``jtt``), the epoch is selected on the validation set, and ``run_dir`` gives the usual
``metrics.jsonl`` and checkpoints.

Training knows nothing of augmentation: the caller passes the encodings to train on (the
clean ones, or those of typo-augmented copies from ``stalwart.text.perturb.typo_augment``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from stalwart.data.core import GroupedDataset, Splits
from stalwart.data.text import TextSplit
from stalwart.errors import ConfigError, DataError, closest
from stalwart.models import build as build_model
from stalwart.recipes import fit
from stalwart.text.classifiers import (
    MODELS,
    UNK,
    EncodedTextClassifier,
    TextClassifier,
    TokenTable,
    encode_split,
    read_description,
)
from stalwart.text.encoding import TokenEncoder
from stalwart.text.sentence_encoder import MiniLMFeaturizer, SentenceEncoderClassifier

__all__ = ["CHOICES", "encode_split", "fit_text_classifier", "load_text_classifier"]

CHOICES = (*MODELS, "minilm")
# Learning rates that train each model well in a few epochs with Adam (tweets, 5k-word AggClust).
DEFAULT_LR = {"bag": 1e-2, "cnn": 1e-3, "gru": 2e-3, "minilm": 1e-2}


def fit_text_classifier(
    train_encoded: Sequence[Sequence[str]],
    train_split: TextSplit,
    val_encoded: Sequence[Sequence[str]],
    val_split: TextSplit,
    *,
    encoder: TokenEncoder,
    model: str = "bag",
    method: str = "erm",
    method_params: dict[str, Any] | None = None,
    model_params: dict[str, Any] | None = None,
    epochs: int = 10,
    lr: float | None = None,
    batch_size: int = 64,
    seed: int = 0,
    max_length: int | None = None,
    min_count: int = 1,
    device: str = "cpu",
    select: str = "accuracy",
    featurizer: MiniLMFeaturizer | None = None,
    run_dir: str | Path | None = None,
    **train: Any,
) -> EncodedTextClassifier:
    """Train a classifier of encodings on ``train_encoded``, selecting on ``val_encoded``.

    Args:
        train_encoded: the encoded tokens of each training example (``encode_split``); the
            token table is built from these.
        train_split: labels, groups and names of the training examples (its texts are not read).
        val_encoded: the encoded tokens of each validation example.
        val_split: labels and groups of the validation examples.
        encoder: the encoder that produced the encodings; the classifier keeps it.
        model: ``bag`` (bag of tokens, additive, certified without enumeration), ``cnn``,
            ``gru``, or ``minilm`` (a linear probe on frozen MiniLM embeddings).
        method: a registered training method (``stalwart.methods.METHODS``), e.g. ``erm`` or
            ``group_dro`` (which reads the split's groups).
        method_params: the method's hyperparameters.
        model_params: the model's registry parameters (``embedding_dim``, ``channels``, ...).
        epochs: passes over the training data.
        lr: Adam's learning rate; default per model (``DEFAULT_LR``).
        batch_size: examples per step.
        seed: seeds the initialisation and the data order.
        max_length: tokens read per example (the rest is cut); None reads every token, which
            keeps the bag exactly additive (``TextClassifier.additive``).
        min_count: training tokens seen fewer times become ``UNK``.
        device: ``cpu``, ``cuda``, ``auto``, ...
        select: the validation metric that selects the epoch (``accuracy``, RobEn's measure, by
            default; ``worst_group_accuracy`` for group-robust training).
        featurizer: for ``minilm``, the featurizer to use (and whose cache to share).
        run_dir: where ``fit`` writes ``metrics.jsonl`` and checkpoints (None: in memory).
        **train: further ``TrainConfig`` settings (``weight_decay``, ``optimizer``, ...).

    Returns:
        A ``TextClassifier`` (``SentenceEncoderClassifier`` for ``minilm``) with the weights of
        the selected epoch, in eval mode, on ``device``.

    Raises:
        ConfigError: an unknown model, method or setting.
        DataError: encodings and splits of different lengths, or splits with other classes.
    """
    if model not in CHOICES:
        raise ConfigError(
            f"unknown text classifier {model!r}{closest(model, CHOICES)}; choose from "
            f"{list(CHOICES)}"
        )
    _check_matches(train_encoded, train_split, "train")
    _check_matches(val_encoded, val_split, "val")
    if val_split.class_names != train_split.class_names:
        raise DataError(
            f"train and val splits have different classes: {list(train_split.class_names)} "
            f"and {list(val_split.class_names)}"
        )
    if model == "minilm" and model_params:
        raise ConfigError(
            f"model 'minilm' is a linear probe with no parameters; got {model_params}"
        )
    if model_params and "vocab_size" in model_params:
        raise ConfigError(
            "model_params must not set vocab_size: it is the size of the token table built "
            "from the training encodings"
        )
    if max_length is not None and max_length < 1:
        raise ConfigError(f"max_length must be at least 1 or None; got {max_length}")
    settings = dict(
        epochs=epochs, lr=DEFAULT_LR[model] if lr is None else lr, batch_size=batch_size, seed=seed,
        device=device, select=select, progress=train.pop("progress", False), **train,
    )  # fmt: skip
    n_classes = train_split.n_classes
    if model == "minilm":
        featurizer = featurizer or MiniLMFeaturizer()
        x_train = featurizer.features(train_encoded)
        x_val = featurizer.features(val_encoded)
        name, params, shape = "linear", {}, (featurizer.dimension,)
    else:
        table = TokenTable.build(train_encoded, min_count=min_count)
        width = _width(train_encoded, max_length)
        x_train = table.ids(train_encoded, width)
        x_val = table.ids(val_encoded, _width(val_encoded, max_length))
        name, shape = MODELS[model], (width,)
        params = {"vocab_size": len(table), **(model_params or {})}
    data = Splits(
        train=_dataset(x_train, train_split), val=_dataset(x_val, val_split),
        test=_dataset(x_val, val_split),  # fit never reads test; the val set stands in
    )  # fmt: skip
    torch.manual_seed(seed)  # the same seed gives the same initial weights
    network = build_model(name, (shape, n_classes), **params)
    if model != "minilm":
        with torch.no_grad():
            # With min_count=1 UNK never occurs in training, so its embedding would keep its
            # random start; zeroed, an unseen token (a typo the table never saw, a cluster absent
            # from training) adds nothing but length. A larger min_count trains it on rare tokens.
            network.embedding.weight[UNK].zero_()
    result = fit(
        network, method, data, method_params=method_params, run_dir=run_dir,
        resume=run_dir is not None, **settings,
    )  # fmt: skip
    trained = result.model.eval()
    history = result.history
    if model == "minilm":
        return SentenceEncoderClassifier(
            encoder, featurizer, trained.head, class_names=train_split.class_names,
            history=history,
        )  # fmt: skip
    return TextClassifier(
        encoder, table, trained, model=name, params=params, input_length=shape[0],
        max_length=max_length, class_names=train_split.class_names, history=history,
    )  # fmt: skip


def load_text_classifier(
    folder: str | Path, encoder: TokenEncoder, *, featurizer: MiniLMFeaturizer | None = None
) -> EncodedTextClassifier:
    """Read any classifier written by ``save`` (token model or MiniLM probe).

    Args:
        folder: the folder ``save`` wrote.
        encoder: the encoder the classifier was trained with (saved by the caller).
        featurizer: for a MiniLM probe, the featurizer to use (default: a fresh one).

    Raises:
        DataError: ``folder`` holds no saved classifier, or a damaged one.
        CheckpointError: the weights do not match the settings.
    """
    folder = Path(folder)
    kind = read_description(folder).get("kind")
    if kind == SentenceEncoderClassifier.kind:
        return SentenceEncoderClassifier.load(folder, encoder, featurizer)
    if kind == TextClassifier.kind:
        return TextClassifier.load(folder, encoder)
    raise DataError(f"{folder} holds a text classifier of unknown kind {kind!r}")


def _width(encoded: Sequence[Sequence[str]], max_length: int | None) -> int:
    longest = max((len(t) for t in encoded), default=1)
    return max(1, longest if max_length is None else min(longest, max_length))


def _check_matches(encoded: Sequence[Sequence[str]], split: TextSplit, what: str) -> None:
    if len(encoded) != len(split):
        raise DataError(
            f"{what}: {len(encoded)} encoded examples but the split {split.name!r} has "
            f"{len(split)}; encode the same split you pass (encode_split(split, encoder))"
        )
    empty = [i for i, tokens in enumerate(encoded) if len(tokens) == 0]
    if empty:
        raise DataError(
            f"{what}: {len(empty)} encoded examples have no token (first: {empty[0]}); drop "
            "empty texts before encoding"
        )


def _dataset(x: Tensor, split: TextSplit) -> GroupedDataset:
    return GroupedDataset(
        x, torch.as_tensor(split.y), torch.as_tensor(split.group), n_classes=split.n_classes,
        group_names=split.group_names, class_names=split.class_names, name=split.name,
    )  # fmt: skip
