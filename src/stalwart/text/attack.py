"""A heuristic typo attack for models that cannot be certified (RobEn's baselines).

RobEn (Jones et al., arXiv 2005.01229, §5; the reference code's ``BeamSearchAttacker``): visit
the words of a sentence in random order; at each, replace it by each of its candidate typos in
every sentence of the beam, keep the ``beam_width`` sentences with the lowest probability of the
true label, and stop as soon as one is misclassified. Candidates are the reference's
``LongDeleteShortAll``: every internal deletion for words longer than four letters, and four
random typos of the family for shorter ones; ``candidates="all"`` tries every typo instead.

An attack only finds failures, so attacked accuracy is an upper bound on robust accuracy:
``certified <= attacked`` always (``check_bound`` asserts it example by example).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from stalwart.data.text import TextSplit
from stalwart.errors import ConfigError
from stalwart.text.certify import split_tokens
from stalwart.text.typos import TypoFamily

Candidates = Literal["long_delete_short_all", "all"]
SHORT = 4  # the reference's max_insert_len: words this long or shorter get random typos
SHORT_SAMPLES = 4


@dataclass(frozen=True)
class AttackResult:
    """Per-example results of ``beam_search_attack``.

    Attributes:
        correct: the clean text is classified correctly.
        survived: still correctly classified after the attack (false if it was wrong already).
        adversarial: the attacked tokens of each example (the clean ones if none was found).
        queries: model evaluations spent on each example.
    """

    correct: np.ndarray
    survived: np.ndarray
    adversarial: list[list[str]]
    queries: np.ndarray

    @property
    def attacked_accuracy(self) -> float:
        """Accuracy under the attack (an upper bound on robust accuracy)."""
        return float(self.survived.mean())


def candidates(word: str, family: TypoFamily, kind: Candidates, rng: random.Random) -> list[str]:
    """The typos of ``word`` the attack tries (without the word itself)."""
    typos = sorted(family.typos(word) - {word})
    if kind == "all" or not typos:
        return typos
    if len(word) > SHORT:
        # Deletions only: the typos of ``word`` one letter shorter.
        deletions = [t for t in typos if len(t) == len(word) - 1]
        return deletions or rng.sample(typos, min(SHORT_SAMPLES, len(typos)))
    return rng.sample(typos, min(SHORT_SAMPLES, len(typos)))


def beam_search_attack(
    classifier: object,
    split: TextSplit,
    *,
    family: TypoFamily | None = None,
    budget: int | None = None,
    beam_width: int = 5,
    kind: Candidates = "long_delete_short_all",
    seed: int = 0,
    batch_size: int = 1024,
) -> AttackResult:
    """Attack every example of ``split`` with typos of ``family`` (module docstring).

    Args:
        classifier: has ``encoder`` and ``logits(encoded_lists)``: the attack writes raw typos
            and the classifier sees their encodings, exactly as a user's input would be.
        split: texts and labels.
        family: the typos allowed; default the encoder's family.
        budget: at most this many words changed (default: the family's ``max_words``; None
            there means every word).
        beam_width: sentences kept after each word.
        kind: candidate typos per word (``long_delete_short_all`` as the paper, or ``all``).
        seed: seeds the word order and the sampled typos.
        batch_size: sentences per model call.
    """
    if beam_width < 1:
        raise ConfigError(f"beam_width must be >= 1; got {beam_width}")
    if kind not in ("long_delete_short_all", "all"):
        raise ConfigError(
            f"unknown candidate set {kind!r}; choose from ['all', 'long_delete_short_all']"
        )
    encoder = classifier.encoder  # type: ignore[attr-defined]
    family = family or encoder.family
    budget = family.max_words if budget is None else budget
    if budget is not None and budget < 1:
        raise ConfigError(f"budget must be >= 1 word (or None for every word); got {budget}")
    rng = random.Random(seed)
    examples = split_tokens(split)
    labels = np.asarray(split.y)
    n = len(labels)
    # Encodings are word by word, so a trial's encoding is its beam sentence's with one token
    # swapped; for an additive model (the bag) its logits are too, one contribution swapped.
    encoded_examples = [encoder.encode_tokens(tokens) for tokens in examples]
    clean_logits = _logits(classifier, encoded_examples, batch_size)
    correct = clean_logits.argmax(axis=1) == labels
    survived = correct.copy()
    adversarial = [list(tokens) for tokens in examples]
    queries = np.ones(n, dtype=np.int64)
    additive = classifier.additive() if hasattr(classifier, "additive") else None
    for i in np.flatnonzero(correct):
        tokens, y = examples[i], int(labels[i])
        positions = [p for p, t in enumerate(tokens) if family.perturbable(t)]
        rng.shuffle(positions)
        beam = [(list(tokens), encoded_examples[i], clean_logits[i])]
        for p in positions[:budget]:
            options = candidates(tokens[p], family, kind, rng)
            if not options:
                continue
            swapped = encoder.encode_tokens(options)
            trials = [
                (raw[:p] + [t] + raw[p + 1 :], enc[:p] + [e] + enc[p + 1 :])
                for raw, enc, _ in beam
                for t, e in zip(options, swapped, strict=True)
            ]
            if additive is not None:
                # Each position is visited once, so every beam sentence still holds the clean
                # token at p: a trial's logits are its beam's plus (new − clean) contribution.
                _, contributions = additive
                clean_token = encoded_examples[i][p]
                c = np.asarray(contributions([clean_token, *swapped], len(tokens)), dtype=float)
                change = c[1:] - c[0]
                trial_logits = np.concatenate([logits + change for _, _, logits in beam])
            else:
                trial_logits = _logits(classifier, [enc for _, enc in trials], batch_size)
            queries[i] += len(trials)
            predicted = trial_logits.argmax(axis=1)
            wrong = np.flatnonzero(predicted != y)
            if wrong.size:
                survived[i] = False
                adversarial[i] = trials[int(wrong[0])][0]
                break
            probs = _softmax(trial_logits)
            keep = np.argsort(probs[:, y], kind="stable")[:beam_width]
            beam = [(trials[k][0], trials[k][1], trial_logits[k]) for k in keep]
            adversarial[i] = beam[0][0]
    return AttackResult(correct, survived, adversarial, queries)


def _logits(classifier: object, encoded: Sequence[Sequence[str]], batch_size: int) -> np.ndarray:
    logits = classifier.logits(encoded, batch_size=batch_size)  # type: ignore[attr-defined]
    return torch.as_tensor(logits, dtype=torch.float64).cpu().numpy()


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def check_bound(certified: np.ndarray, survived: np.ndarray) -> None:
    """Raise if an example is certified robust yet the attack broke it (a soundness bug)."""
    broken = np.flatnonzero(np.asarray(certified) & ~np.asarray(survived))
    if broken.size:
        raise AssertionError(
            f"{broken.size} examples certified robust were broken by the attack (first: "
            f"{int(broken[0])}): the certificate is unsound; please report this"
        )
