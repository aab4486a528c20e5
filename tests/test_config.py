"""Strict configuration: parse_config, load_config and --set overrides."""

import re
import textwrap

import pydantic
import pytest

from stalwart.config import RunConfig, TrainConfig, apply_override
from stalwart.errors import ConfigError
from stalwart.experiments.configs import load_config, parse_config

MINIMAL = """\
data:
  name: toy_spurious
model:
  name: mlp
method:
  name: erm
"""


def base(**sections):
    raw = {"data": {"name": "toy_spurious"}, "model": {"name": "mlp"}, "method": {"name": "erm"}}
    raw.update(sections)
    return raw


def write(tmp_path, text, name="run.yaml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def test_minimal_config_parses_with_defaults(tmp_path):
    config = load_config(write(tmp_path, MINIMAL))
    assert isinstance(config, RunConfig)
    assert config.data.name == "toy_spurious" and config.data.params == {}
    assert config.model.name == "mlp" and config.method.name == "erm"
    assert config.train == TrainConfig()
    assert config.train.epochs == 10 and config.train.lr == pytest.approx(1e-3)
    assert config.name == "run"
    assert str(config.run_dir()) == "runs/run"


def test_full_config_parses(tmp_path):
    config = load_config(
        write(
            tmp_path,
            """\
            name: demo
            out: /tmp/somewhere
            data:
              name: toy_spurious
              n: 200
              majority_fraction: 0.8
            model:
              name: mlp
              hidden: [32, 16]
            train:
              epochs: 3
              lr: 0.05
              optimizer: sgd
              schedule: cosine
              seed: 7
            """,
        )
    )
    assert config.data.params == {"n": 200, "majority_fraction": 0.8}
    assert config.model.params == {"hidden": [32, 16]}
    assert config.method.name == "erm"  # the default method
    assert (config.train.epochs, config.train.lr, config.train.optimizer) == (3, 0.05, "sgd")
    assert config.train.seed == 7
    assert str(config.run_dir()) == "/tmp/somewhere"


def test_unknown_top_level_key_suggests_train():
    with pytest.raises(ConfigError, match=r"unknown key 'trian' \(did you mean 'train'\?\)"):
        parse_config(base(trian={"epochs": 3}))


def test_unknown_train_key_suggests_the_closest():
    with pytest.raises(
        ConfigError, match=r"unknown key 'train\.epoch' \(did you mean 'epochs'\?\)"
    ):
        parse_config(base(train={"epoch": 3}))


def test_unknown_train_key_lists_valid_keys():
    with pytest.raises(ConfigError) as error:
        parse_config(base(train={"lr_rate": 0.1}))
    message = str(error.value)
    assert "train.lr_rate" in message
    assert "'lr'" in message and "'epochs'" in message


@pytest.mark.parametrize(
    "train, key",
    [
        ({"epochs": "ten"}, "train.epochs"),
        ({"lr": -1}, "train.lr"),
        ({"lr": 0}, "train.lr"),
        ({"epochs": 0}, "train.epochs"),
        ({"momentum": 1.0}, "train.momentum"),
        ({"optimizer": "adagrad"}, "train.optimizer"),
        ({"device": "gpu"}, "train.device"),
        ({"seed": -3}, "train.seed"),
    ],
)
def test_bad_train_value_names_the_key(train, key):
    with pytest.raises(ConfigError) as error:
        parse_config(base(train=train))
    message = str(error.value)
    assert key in message
    assert repr(next(iter(train.values()))) in message  # the value received


def test_missing_section_is_reported():
    with pytest.raises(ConfigError, match="missing required key 'model'"):
        parse_config({"data": {"name": "toy_spurious"}})


def test_non_mapping_is_rejected():
    with pytest.raises(ConfigError, match="mapping"):
        parse_config(["data", "model"])


@pytest.mark.parametrize(
    "section, wrong, right, member",
    [
        ("data", "toy_spurius", "toy_spurious", "digits"),
        ("model", "mpl", "mlp", "cnn"),
        ("method", "ermm", "erm", "erm"),
    ],
)
def test_unknown_component_lists_choices(section, wrong, right, member):
    raw = base()
    raw[section] = {"name": wrong}
    with pytest.raises(ConfigError) as error:
        parse_config(raw)
    message = str(error.value)
    assert f"{section}:" in message
    assert f"did you mean '{right}'" in message
    assert "choose from" in message and f"'{member}'" in message


def test_unknown_data_parameter_suggests():
    raw = base(data={"name": "toy_spurious", "majority_fractoin": 0.8})
    with pytest.raises(ConfigError, match=r"majority_fractoin.*did you mean 'majority_fraction'"):
        parse_config(raw)


def test_unknown_model_parameter_suggests():
    raw = base(model={"name": "mlp", "hiden": [8]})
    with pytest.raises(ConfigError, match=r"model: .*'hiden'.*did you mean 'hidden'"):
        parse_config(raw)


def test_parameter_of_another_dataset_is_rejected():
    # spurious_correlation belongs to colored_mnist/dominoes, not toy_spurious.
    raw = base(data={"name": "toy_spurious", "spurious_correlation": 0.9})
    with pytest.raises(ConfigError, match="spurious_correlation"):
        parse_config(raw)


def test_load_config_with_overrides(tmp_path):
    path = write(tmp_path, MINIMAL.replace("toy_spurious", "colored_mnist"))
    config = load_config(
        path, ["train.lr=0.01", "data.spurious_correlation=0.9", "train.epochs=4", "name=x"]
    )
    assert config.train.lr == 0.01 and isinstance(config.train.lr, float)
    assert config.data.params["spurious_correlation"] == 0.9
    assert isinstance(config.data.params["spurious_correlation"], float)
    assert config.train.epochs == 4 and isinstance(config.train.epochs, int)
    assert config.name == "x"


def test_overrides_on_toy_spurious(tmp_path):
    config = load_config(
        write(tmp_path, MINIMAL), ["data.majority_fraction=0.75", "model.hidden=[8, 4]"]
    )
    assert config.data.params == {"majority_fraction": 0.75}
    assert config.model.params == {"hidden": [8, 4]}


def test_override_with_exponent_lr_gives_a_float(tmp_path):
    config = load_config(write(tmp_path, MINIMAL), ["train.lr=1e-3"])
    assert config.train.lr == pytest.approx(0.001)


def test_apply_override_parses_values_as_yaml():
    raw = {}
    apply_override(raw, "train.lr=0.01")
    apply_override(raw, "train.progress=false")
    apply_override(raw, "data.name=toy_spurious")
    apply_override(raw, "a.b.c=3")
    assert raw == {
        "train": {"lr": 0.01, "progress": False},
        "data": {"name": "toy_spurious"},
        "a": {"b": {"c": 3}},
    }


def test_apply_override_exponent_is_a_float():
    raw = {}
    apply_override(raw, "data.spurious_correlation=1e-3")
    assert raw["data"]["spurious_correlation"] == pytest.approx(0.001)
    assert isinstance(raw["data"]["spurious_correlation"], float)


@pytest.mark.parametrize("bad", ["train.lr", "=0.1", ""])
def test_bad_override_raises(tmp_path, bad):
    with pytest.raises(ConfigError, match="key=value"):
        load_config(write(tmp_path, MINIMAL), [bad])


def test_override_into_a_value_raises():
    raw = {"train": 5}
    with pytest.raises(ConfigError, match="not a section"):
        apply_override(raw, "train.lr=0.1")


def test_override_with_bad_value_is_checked(tmp_path):
    with pytest.raises(ConfigError, match="train.lr"):
        load_config(write(tmp_path, MINIMAL), ["train.lr=-0.5"])
    with pytest.raises(ConfigError, match=r"did you mean 'epochs'"):
        load_config(write(tmp_path, MINIMAL), ["train.epoch=3"])


def test_missing_file_raises(tmp_path):
    with pytest.raises(ConfigError, match=r"cannot read config .*absent\.yaml"):
        load_config(tmp_path / "absent.yaml")


@pytest.mark.parametrize(
    "text",
    ["data: [unclosed\nmodel: {name: mlp}\n", "data:\n  name: toy_spurious\n\tmodel: x\n"],
)
def test_invalid_yaml_raises(tmp_path, text):
    path = tmp_path / "broken.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(path)


def test_top_level_list_raises(tmp_path):
    with pytest.raises(ConfigError, match="mapping"):
        load_config(write(tmp_path, "- data\n- model\n"))


def test_empty_file_reports_missing_sections(tmp_path):
    with pytest.raises(ConfigError, match="missing required key"):
        load_config(write(tmp_path, ""))


def test_data_params_inject_train_seed():
    config = parse_config(base(train={"seed": 5}))
    assert config.data_params() == {"seed": 5}
    config = parse_config(base(data={"name": "toy_spurious", "n": 100}, train={"seed": 2}))
    assert config.data_params() == {"seed": 2, "n": 100}


def test_data_seed_wins_over_train_seed():
    config = parse_config(base(data={"name": "toy_spurious", "seed": 11}, train={"seed": 5}))
    assert config.data_params() == {"seed": 11}
    assert config.train.seed == 5


def test_config_is_frozen():
    config = parse_config(base())
    with pytest.raises(pydantic.ValidationError, match="frozen"):
        config.train.lr = 0.5
    assert config.train.lr == pytest.approx(1e-3)


# --- strict numbers everywhere (issue 9: items 4, 8, 10) -------------------------------------


def strict_model_classes():
    """Every config section: ``StrictModel`` and all its subclasses, experiment kinds included."""
    import importlib
    import pkgutil

    import stalwart.experiments
    from stalwart.config import StrictModel

    for module in pkgutil.walk_packages(stalwart.experiments.__path__, "stalwart.experiments."):
        importlib.import_module(module.name)  # every experiment kind's config class
    found, todo = [], [StrictModel]
    while todo:
        cls = todo.pop()
        found.append(cls)
        todo += cls.__subclasses__()
    return found


def fields_of_type(kind):
    """(class, field) for every field of a config section annotated ``kind`` or ``kind | None``."""
    rows = []
    for cls in strict_model_classes():
        for name, field in cls.model_fields.items():
            if field.annotation is kind or field.annotation == (kind | None):
                rows.append(pytest.param(cls, name, id=f"{cls.__name__}.{name}"))
    return rows


def errors_at(cls, key, value):
    try:
        cls.model_validate({key: value})
    except pydantic.ValidationError as error:
        return {item["type"] for item in error.errors() if item["loc"] == (key,)}
    return set()


@pytest.mark.parametrize(("cls", "key"), fields_of_type(float))
@pytest.mark.parametrize("value", [float("inf"), float("-inf"), float("nan")])
def test_every_float_of_every_config_section_must_be_finite(cls, key, value):
    assert errors_at(cls, key, value) == {"finite_number"}


@pytest.mark.parametrize(("cls", "key"), fields_of_type(int) + fields_of_type(float))
def test_no_number_of_any_config_section_takes_a_boolean(cls, key):
    assert errors_at(cls, key, True)


@pytest.mark.parametrize(("cls", "key"), fields_of_type(int))
def test_every_integer_of_every_config_section_fits_int64(cls, key):
    assert errors_at(cls, key, 2**63)


def test_the_config_sections_are_all_found():
    names = {cls.__name__ for cls in strict_model_classes()}
    assert {"TrainConfig", "RunConfig", "CompareConfig", "SweepConfig"} <= names
    assert len(fields_of_type(float)) >= 8 and len(fields_of_type(int)) >= 10


def test_train_integers_have_upper_bounds():
    for key, limit in {"epochs": 10**6, "batch_size": 2**24, "seed": 2**32 - 1}.items():
        TrainConfig(**{key: limit})
        with pytest.raises(ConfigError, match=rf"train\.{key}: .*<= {limit}\)"):
            parse_config(base(train={key: limit + 1}))


def parameters_registry():
    from collections.abc import Sequence

    from stalwart.registry import Registry

    registry = Registry("thing")

    @registry.register("demo")
    def demo(
        *, n: int = 1, rate: float = 0.5, sizes: Sequence[int] = (1,), cap: int | None = None,
        flag: bool = False,
    ) -> tuple:  # fmt: skip
        return n, rate, tuple(sizes), cap, flag

    return registry


@pytest.mark.parametrize(
    ("params", "mentions"),
    [
        ({"n": True}, "parameter 'n': expected a number, not a boolean"),
        ({"rate": False}, "parameter 'rate': expected a number, not a boolean"),
        ({"sizes": [2, True]}, "parameter 'sizes.1': expected a number, not a boolean"),
        ({"cap": True}, "parameter 'cap"),
        ({"rate": float("nan")}, "parameter 'rate': Input should be a finite number"),
        ({"rate": float("inf")}, "parameter 'rate': Input should be a finite number"),
        ({"n": 2**63}, "parameter 'n': Input should be less than or equal to 9223372036854775807"),
        ({"n": -(2**63) - 1}, "parameter 'n': Input should be greater than or equal to"),
    ],
)
def test_registry_parameters_refuse_booleans_non_finite_and_overflowing_numbers(params, mentions):
    with pytest.raises(ConfigError, match=re.escape(mentions)):
        parameters_registry().check_params("demo", params)


def test_registry_parameters_stay_lax_where_it_is_harmless():
    import numpy as np

    registry = parameters_registry()
    built = registry.build("demo", n=np.int64(3), rate=1, sizes=[2, 3], cap=None, flag=True)
    assert built == (3, 1.0, (2, 3), None, True)


def test_error_messages_quote_a_short_prefix_of_huge_values():
    huge = ["x" * 10_000] * 10_000
    with pytest.raises(ConfigError) as error:
        parse_config(base(train={"epochs": huge}))
    with pytest.raises(ConfigError) as registry_error:
        parameters_registry().check_params("demo", {"n": huge})
    for message in (str(error.value), str(registry_error.value)):
        assert len(message) < 300, message
        assert "..." in message
