"""Bad `stalwart attack` options: each is refused before the run is loaded, in one line that
names the option, its range and the value given."""

import pytest
from tests.bad_input.conftest import expect_clean_error, invoke

MISSING_RUN = "no-such-run-directory"

ROWS = [
    # (options, what the message must name)
    (["--steps", "0"], ["steps must be an integer >= 1", "got 0"]),
    (["--steps", "-3"], ["steps must be an integer >= 1", "got -3"]),
    (["--restarts", "0"], ["restarts must be an integer >= 1", "got 0"]),
    (["--queries", "0"], ["queries must be an integer >= 1", "got 0"]),
    (["--queries", "-1", "--attack", "square"], ["queries must be an integer >= 1", "got -1"]),
    (["--eps", "-0.1"], ["eps must be >= 0", "-0.1"]),
    (["--eps", "nan"], ["eps must be >= 0", "nan"]),
    (["--eps", "2"], ["eps = 2.0 exceeds the input range [0.0, 1.0]"]),
    (["--eps", "inf"], ["exceeds the input range"]),
    (["--eps", "0.1", "--lower", "1", "--upper", "0"], ["lower < upper", "[1.0, 0.0]"]),
    (
        ["--eps", "0.1", "--lower", "0", "--upper", "1", "--lower", "0.5", "--upper", "0.5"],
        ["lower < upper", "[0.5, 0.5]"],
    ),  # fmt: skip
    (["--eps", "0.1", "--upper", "inf"], ["input range must be finite", "upper = inf"]),
    (["--eps", "0.1", "--lower", "nan"], ["input range must be finite", "lower = nan"]),
    (["--eps", "0.1", "--norm", "l1"], ["norm must be one of ['linf', 'l2']", "'l1'"]),
    (
        ["--eps", "0.1", "--attack", "pgdd"],
        ["unknown attack 'pgdd'", "did you mean 'pgd'", "'fgsm'", "'square'"],
    ),  # fmt: skip
    (["--eps", "0.1", "--attack", "square", "--norm", "l2"], ["square", "linf only", "'l2'"]),
    (["--eps", "0.1", "--examples", "0"], ["--examples must be >= 1", "got 0"]),
]


@pytest.mark.parametrize("options, mentions", ROWS, ids=[" ".join(options) for options, _ in ROWS])
def test_bad_attack_option_is_named(options, mentions):
    if "--eps" not in options:
        options = ["--eps", "0.1", *options]
    expect_clean_error(invoke("attack", MISSING_RUN, *options), mentions)


def test_valid_options_pass_on_to_the_run_directory():
    """The checks refuse only what is wrong: good options reach the run directory's error."""
    output = expect_clean_error(
        invoke("attack", MISSING_RUN, "--eps", "1", "--steps", "1", "--restarts", "1",
               "--queries", "1", "--attack", "square", "--attack", "fgsm"),
    )  # fmt: skip
    assert MISSING_RUN in output
    for option in ("steps", "restarts", "queries", "eps", "norm"):
        assert f"{option} must" not in output
