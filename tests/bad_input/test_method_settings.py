"""Bad method settings: each row gives ``stalwart run`` a config whose method is wrong one way
and expects one clear error naming the method, the parameter and the value, before training.
"""

from __future__ import annotations

import pytest
import yaml
from tests.bad_input.conftest import expect_clean_error, invoke
from tests.conftest import toy_run

TOY = toy_run(epochs=1)

ROWS = [
    ({"name": "gdro"}, ["unknown method 'gdro'", "group_dro"]),
    ({"name": "cvar_dro", "alpha": 1.5}, ["cvar_dro", "alpha", "1.5"]),
    ({"name": "group_dro", "step_size": 0.0}, ["group_dro", "step_size", "0.0"]),
    ({"name": "group_dro", "generalization_adjustment": -1}, ["generalization_adjustment", "-1"]),
    ({"name": "jtt", "upweight": 0}, ["jtt", "upweight", "got 0"]),
    ({"name": "jtt", "identification_epochs": 0}, ["identification_epochs", "got 0"]),
    ({"name": "dfr", "refits": 0}, ["dfr", "refits", "0"]),
    ({"name": "dfr", "c_grid": [1.0, -0.1]}, ["dfr", "c_grid", "-0.1"]),
    ({"name": "jtt", "upweigth": 5}, ["upweigth", "upweight"]),  # did-you-mean
]


IDS = [" ".join(f"{key}={value}" for key, value in method.items()) for method, _ in ROWS]


@pytest.mark.parametrize("method, mentions", ROWS, ids=IDS)
def test_bad_method_setting_is_one_clear_error(tmp_path, method, mentions):
    config = tmp_path / "toy.yaml"
    config.write_text(yaml.safe_dump({**TOY, "method": method}))
    result = invoke("run", config, "--out", tmp_path / "run")
    expect_clean_error(result, mentions=mentions)
    assert not (tmp_path / "run" / "metrics.jsonl").exists()  # refused before training
