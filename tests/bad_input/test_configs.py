"""Bad configs, fed to `stalwart run`: each row must fail at validation with one clear message.

Every row is refused before any data is loaded or any model built; the message names the key
and the rule (the range, "finite", the duplicate's lines) and quotes at most a short prefix of
the value received.
"""

from __future__ import annotations

import time

import pytest
from tests.bad_input.conftest import expect_clean_error, invoke

from stalwart.config import MAX_YAML_VALUES
from stalwart.errors import MAX_QUOTED, ConfigError
from stalwart.experiments.configs import load_experiment

BASE = """\
data:
  name: toy_spurious
model:
  name: mlp
"""


def alias_bomb(levels: int = 9) -> str:
    """A "billion laughs" document: 9 levels of 9 aliases each expand to 9**9 strings."""
    lines = ["data:", "  name: toy_spurious", '  a0: &a0 ["lol", "lol", "lol", "lol", "lol", '
             '"lol", "lol", "lol", "lol"]']  # fmt: skip
    for level in range(1, levels):
        lines.append(f"  a{level}: &a{level} [" + ", ".join([f"*a{level - 1}"] * 9) + "]")
    lines += [f"  n: *a{levels - 1}", "model:", "  name: mlp"]
    return "\n".join(lines) + "\n"


# (id, YAML text, extra command-line arguments, what the message must name)
ROWS = [
    ("lr-1e400-reads-as-inf", BASE + "train:\n  lr: 1e400\n", [], ["train.lr", "finite", "inf"]),
    ("lr-nan", BASE + "train:\n  lr: .nan\n", [], ["train.lr", "finite"]),
    ("momentum-minus-inf", BASE + "train:\n  momentum: -.inf\n", [], ["train.momentum", "finite"]),
    (
        "weight-decay-inf-by-set",
        BASE,
        ["--set", "train.weight_decay=.inf"],
        ["train.weight_decay", "finite"],
    ),
    (
        "duplicate-key",
        BASE + "train:\n  lr: 0.5\n  epochs: 2\n  lr: 0.001\n",
        [],
        ["duplicate key 'lr'", "lines 6 and 8"],
    ),
    ("duplicate-section", BASE + "model:\n  name: cnn\n", [], ["duplicate key 'model'", "3 and 5"]),
    (
        "duplicate-key-in-flow",
        BASE + "train: {lr: 0.5, lr: 0.1}\n",
        [],
        ["'lr'", "twice on line 5"],
    ),
    ("epochs-true", BASE + "train:\n  epochs: true\n", [], ["train.epochs", "integer", "True"]),
    ("epochs-string", BASE + "train:\n  epochs: '3'\n", [], ["train.epochs", "integer"]),
    ("epochs-fraction", BASE + "train:\n  epochs: 2.5\n", [], ["train.epochs", "integer"]),
    ("progress-one", BASE + "train:\n  progress: 1\n", [], ["train.progress", "boolean"]),
    (
        "epochs-huge",
        BASE + "train:\n  epochs: 99999999999999999999999\n",
        [],
        ["train.epochs", "1 <= epochs <= 1000000"],
    ),
    (
        "batch-size-huge",
        BASE + "train:\n  batch_size: 4294967296\n",
        [],
        ["train.batch_size", "less than or equal to 16777216"],
    ),
    (
        "seed-beyond-2**32",
        BASE + "train:\n  seed: 4294967296\n",
        [],
        ["train.seed", "less than or equal to 4294967295"],
    ),
    (
        "data-param-true",
        "data:\n  name: toy_spurious\n  n: true\nmodel:\n  name: mlp\n",
        [],
        ["dataset 'toy_spurious'", "parameter 'n'", "not a boolean"],
    ),
    (
        "model-param-list-item-true",
        "data:\n  name: toy_spurious\nmodel:\n  name: mlp\n  hidden: [8, true]\n",
        [],
        ["model 'mlp'", "parameter 'hidden.1'", "not a boolean"],
    ),
    (
        "data-param-nan",
        "data:\n  name: toy_spurious\n  majority_fraction: .nan\nmodel:\n  name: mlp\n",
        [],
        ["parameter 'majority_fraction'", "finite"],
    ),
    (
        "data-param-beyond-int64",
        "data:\n  name: toy_spurious\n  n: 99999999999999999999999\nmodel:\n  name: mlp\n",
        [],
        ["parameter 'n'", "9223372036854775807"],
    ),
    (
        "compare-seed-beyond-int64",
        "kind: compare\n" + BASE + "methods: {erm: {}}\nseeds: [0, 99999999999999999999999]\n",
        [],
        ["seeds", "item [1]", "int64"],
    ),
    (
        "rst-linear-variance-inf",
        "kind: rst_linear\nhigh_variance: .inf\n",
        [],
        ["high_variance", "finite"],
    ),
    ("alias-bomb", alias_bomb(), [], [f"more than {MAX_YAML_VALUES:,} values", "aliases"]),
    (
        "recursive-alias",
        "data: &d\n  name: toy_spurious\n  loop: [*d]\nmodel:\n  name: mlp\n",
        [],
        ["line", "recursive alias"],
    ),
    (
        "huge-value-quoted-short",
        "data:\n  name: toy_spurious\n  n: '" + "x" * 200_000 + "'\nmodel:\n  name: mlp\n",
        [],
        ["parameter 'n'", "xxx..."],
    ),
]


@pytest.mark.parametrize(
    ("text", "args", "mentions"), [r[1:] for r in ROWS], ids=[r[0] for r in ROWS]
)
def test_bad_config_is_refused_with_one_clear_message(tmp_path, text, args, mentions):
    path = tmp_path / "run.yaml"
    path.write_text(text)
    output = expect_clean_error(invoke("run", path, "--out", tmp_path / "run", *args))
    # The terminal wraps long lines anywhere, so compare with the whitespace taken out.
    for text in mentions:
        assert "".join(text.split()) in "".join(output.split()), output
    assert not (tmp_path / "run").exists()  # refused before anything ran
    # No value is echoed in full: each line holds the key, the rule and a short quote.
    assert len(output) < 1500, output


def test_alias_bomb_is_refused_within_a_second(tmp_path):
    path = tmp_path / "bomb.yaml"
    path.write_text(alias_bomb())
    assert len(path.read_text()) < 1100  # the 1.1 KB of the report, 9**9 strings expanded
    warm = tmp_path / "warm.yaml"
    warm.write_text(BASE)
    load_experiment(warm)  # imports and registries loaded, so only the bomb is timed
    start = time.perf_counter()
    with pytest.raises(ConfigError, match="aliases") as error:
        load_experiment(path)
    assert time.perf_counter() - start < 1.0
    assert len(str(error.value)) < 400


def test_long_lists_of_problems_are_cut(tmp_path):
    path = tmp_path / "run.yaml"
    items = ", ".join(["true"] * 500)
    path.write_text(f"kind: compare\n{BASE}methods: {{erm: {{}}}}\nseeds: [{items}]\n")
    with pytest.raises(ConfigError) as error:
        load_experiment(path)
    message = str(error.value)
    assert "and 480 more problems" in message
    assert message.count("\n") == 20
    assert all(len(line) < 2 * MAX_QUOTED + 100 for line in message.splitlines())


def test_merge_keys_may_override_but_written_keys_may_not(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text(BASE + "train:\n  <<: {epochs: 2, lr: 0.1}\n  lr: 0.01\n")
    config = load_experiment(path)
    assert (config.train.epochs, config.train.lr) == (2, 0.01)
