"""A heuristic typo attack for models that cannot be certified (RobEn's baselines).

RobEn (Jones et al., arXiv 2005.01229, §5; the reference code's ``BeamSearchAttacker``): visit
the words of a sentence in random order; at each, replace it by each of its candidate typos in
every sentence of the beam, keep the ``beam_width`` sentences with the lowest probability of the
true label, and stop as soon as one is misclassified. Candidates are the reference's
``LongDeleteShortAll``: every internal deletion for words longer than four letters, and four
random typos of the family for shorter ones; ``candidates="all"`` tries every typo instead.

The examples advance together, one word per round, and every distinct trial sentence of a
round is scored in one model call (``_lockstep``), so an accelerator gets batches of thousands
instead of one example's few dozen, and a sentence that recurs (behind a stable encoding most
typos encode as the word itself) is computed once.

With a ``checkpoint`` file the scores are kept on disk every few minutes
(``stalwart.text.scores``), so an attack that is killed (an hour or more on a transformer over
reviews) resumes where it stopped and ends as an uninterrupted run ends.

An attack only finds failures, so attacked accuracy is an upper bound on robust accuracy:
``certified <= attacked`` always (``check_bound`` asserts it example by example).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from stalwart.data.text import TextSplit
from stalwart.errors import ConfigError
from stalwart.text.certify import split_tokens
from stalwart.text.scores import Scores, fingerprint
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
        queries: sentences scored for each example, the clean one included (a sentence that
            recurs is counted each time and computed once).
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
    progress: Callable[[int, int], None] | None = None,
    checkpoint: str | Path | None = None,
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
        progress: called after each round (one word of every example still under attack)
            with the attacks finished and the attacks run (the examples classified correctly).
        checkpoint: a file where the scores of every sentence tried are kept (written every
            few minutes, ``stalwart.text.scores``): run again after an interruption, the
            attack replays from it to where it stopped and gives an uninterrupted run's result.
            The caller removes it when done with the attack.

    Raises:
        ConfigError: a bad ``beam_width``, ``kind`` or ``budget``.
        DataError: ``checkpoint`` exists but is not a readable checkpoint.
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
    encoded_examples = [encoder.encode_tokens(tokens) for tokens in examples]
    clean_logits = _logits(classifier, encoded_examples, batch_size)
    correct = clean_logits.argmax(axis=1) == labels
    survived = correct.copy()
    adversarial = [list(tokens) for tokens in examples]
    queries = np.ones(len(labels), dtype=np.int64)
    additive = classifier.additive() if hasattr(classifier, "additive") else None
    search = _Search(family, budget, beam_width, kind, rng, encoder, additive)
    attacks = {
        int(i): search.attack(examples[i], encoded_examples[i], clean_logits[i], int(labels[i]))
        for i in np.flatnonzero(correct)
    }
    # Every distinct sentence is scored once (behind a stable encoding most trials are the
    # clean sentence again), and with a checkpoint, once across runs of the same attack.
    settings = repr((budget, beam_width, kind, seed, labels.tolist()))
    scores = Scores(lambda sentences: _logits(classifier, sentences, batch_size), checkpoint,
                    fingerprint(examples, clean_logits, settings))  # fmt: skip
    scores.add(encoded_examples, clean_logits)

    def score(requests: dict[int, list[list[str]]]) -> dict[int, np.ndarray]:
        trials = [e for sentences in requests.values() for e in sentences]
        found = iter(scores(trials) if trials else [])
        return {i: np.stack([next(found) for _ in sentences]) for i, sentences in requests.items()}

    for i, (won, sentence, spent) in _lockstep(attacks, score, progress).items():
        survived[i], adversarial[i], queries[i] = not won, sentence, queries[i] + spent
    return AttackResult(correct, survived, adversarial, queries)


Outcome = tuple[bool, list[str], int]
"""An example's attack: whether it found a misclassified sentence, the sentence, trials spent."""
Attack = Generator[list[list[str]], np.ndarray, Outcome]


@dataclass
class _Search:
    """The beam search over one example's words (module docstring), as a generator.

    ``attack`` yields the encodings of each word's trials and is sent back their logits, so
    ``_lockstep`` can score the trials of every example in one model call. An additive model
    (the bag) scores its own trials and never yields: its examples run one after another, as
    they draw from the shared ``rng``; the others draw round by round, in example order.
    """

    family: TypoFamily
    budget: int | None
    beam_width: int
    kind: Candidates
    rng: random.Random
    encoder: Any
    additive: Any

    def attack(self, tokens: list[str], encoded: list[str], logits: np.ndarray, y: int) -> Attack:
        positions = [p for p, t in enumerate(tokens) if self.family.perturbable(t)]
        self.rng.shuffle(positions)
        beam = [(list(tokens), encoded, logits)]
        best, spent = list(tokens), 0
        for p in positions[: self.budget]:
            options = candidates(tokens[p], self.family, self.kind, self.rng)
            if not options:
                continue
            swapped = self.encoder.encode_tokens(options)
            trials = [
                (raw[:p] + [t] + raw[p + 1 :], enc[:p] + [e] + enc[p + 1 :])
                for raw, enc, _ in beam
                for t, e in zip(options, swapped, strict=True)
            ]
            if self.additive is not None:
                # Each position is visited once, so every beam sentence still holds the clean
                # token at p: a trial's logits are its beam's plus (new − clean) contribution.
                _, contributions = self.additive
                c = np.asarray(contributions([encoded[p], *swapped], len(tokens)), dtype=float)
                change = c[1:] - c[0]
                trial_logits = np.concatenate([logits + change for _, _, logits in beam])
            else:
                trial_logits = yield [enc for _, enc in trials]
            spent += len(trials)
            wrong = np.flatnonzero(trial_logits.argmax(axis=1) != y)
            if wrong.size:
                return True, trials[int(wrong[0])][0], spent
            keep = np.argsort(_softmax(trial_logits)[:, y], kind="stable")[: self.beam_width]
            beam = [(trials[k][0], trials[k][1], trial_logits[k]) for k in keep]
            best = beam[0][0]
        return False, best, spent


def _lockstep(
    attacks: dict[int, Attack],
    score: Callable[[dict[int, list[list[str]]]], dict[int, np.ndarray]],
    progress: Callable[[int, int], None] | None = None,
) -> dict[int, Outcome]:
    """Run every attack to its end, scoring all pending trials together each round.

    A transformer's cost is per sentence and its calls have a fixed overhead, so one call for
    the trials of many examples (deduplicated) is what makes attacking it affordable.
    """
    outcomes: dict[int, Outcome] = {}
    replies: dict[int, np.ndarray | None] = dict.fromkeys(attacks)
    while replies:
        requests = {}
        for i, reply in replies.items():
            try:
                requests[i] = attacks[i].send(reply)
            except StopIteration as finished:
                outcomes[i] = finished.value
        replies = dict(score(requests)) if requests else {}
        if progress is not None:
            progress(len(outcomes), len(attacks))
    return outcomes


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
