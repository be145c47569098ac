"""Bad input stops a run before any work, naming the key, the value and the choices."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from fedsnn.experiment.config import RunConfig, markdown_table
from fedsnn.errors import ConfigError
from fedsnn.launch import main as launch

ROOT = Path(__file__).resolve().parents[1]

BAD = [
    ("model", "resnet", "'lenet'"),
    ("dataset", "imagenet", "'mnist'"),
    ("mode", "fedprox", "'fedsgd'"),
    ("surrogate", "relu", "'atan'"),
    ("neuron", "izhikevich", "'lif'"),
    ("partitioning", "shards", "'dirichlet'"),
    ("init", "xavier", "'uniform-0.5'"),
    ("timesteps", 0, ">= 1"),
    ("num-rounds", -1, ">= 1"),
    ("batch-size", 0, ">= 1"),
    ("lr", 0.0, "> 0"),
    ("lr", -0.1, "> 0"),
    ("alpha", 0.0, "> 0"),
    ("fraction-train", 1.5, "<= 1"),
    ("batch-size", "big", "an integer"),
    ("modle", "lenet", "a known key"),
]


@pytest.mark.parametrize("key,value,expected", BAD)
def test_bad_values_name_key_value_and_choices(key, value, expected):
    with pytest.raises(ConfigError) as err:
        RunConfig.from_mapping({key: value})
    message = str(err.value)
    assert f"'{key}'" in message and repr(value) in message and expected in message


def test_real_datasets_need_a_data_dir():
    with pytest.raises(ConfigError, match="data-dir"):
        RunConfig(dataset="lfw")


def test_event_data_need_the_snn():
    with pytest.raises(ConfigError, match="snn-lenet"):
        RunConfig(dataset="dvs-gesture", data_dir="/tmp", model="lenet")


def test_pyproject_defaults_equal_the_typed_defaults():
    with open(ROOT / "pyproject.toml", "rb") as f:
        app_config = tomllib.load(f)["tool"]["flwr"]["app"]["config"]
    assert app_config == RunConfig().to_dict()


def test_config_hash_changes_with_any_value():
    assert RunConfig().digest() != RunConfig(seed=1).digest()
    assert RunConfig().digest() == RunConfig.from_mapping({}).digest()


@pytest.mark.parametrize("override,fragment", [
    ("model='vgg'", "'model'"),
    ("lr=-1.0", "'lr'"),
    ("dataset='lfw' data-dir='/nonexistent/folder'", "lfw"),
])
def test_launcher_rejects_bad_input_before_starting_flower(override, fragment, capsys):
    assert launch([str(ROOT), "--run-config", override]) == 2
    assert fragment in capsys.readouterr().err


def test_readme_key_table_is_the_generated_one():
    """README's "Run-config keys" table is ``markdown_table()`` verbatim (regenerate with
    ``python -m fedsnn.experiment.config``)."""
    readme = (ROOT / "README.md").read_text()
    assert markdown_table() in readme
