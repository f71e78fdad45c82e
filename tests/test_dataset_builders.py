"""Dataset builders take the keys of their `data` config as keyword arguments: a misspelt key is refused."""

import pytest

from learnlib.configs.compose import compose, list_experiments
from learnlib.data import DATASETS, build_datasets

BUILT_IN = ("digits", "image_folder", "slat")


def test_a_misspelt_data_key_is_refused_naming_it_and_the_valid_ones():
    cfg = compose("mlp_digits", overrides=["+data.max_shfit=3"])
    with pytest.raises(ValueError, match=r"dataset 'digits' has no option\(s\) \['max_shfit'\].*'max_shift'"):
        build_datasets(cfg.data)


@pytest.mark.parametrize("name", BUILT_IN)
def test_every_builder_refuses_an_unknown_key(name):
    valid = DATASETS.options(name)
    assert valid, f"the {name} builder must list its keys"
    with pytest.raises(ValueError, match=rf"dataset '{name}' has no option\(s\) \['no_such_key'\]; its options are"):
        build_datasets({"name": name, "no_such_key": 1})


@pytest.mark.parametrize("experiment", list_experiments())
def test_every_experiment_only_sets_keys_its_builder_takes(experiment):
    data = compose(experiment).data
    assert set(data) - {"name"} <= set(DATASETS.options(data.name)), experiment


def test_digits_built_from_keywords_match_the_config():
    train, val = build_datasets(compose("var_digits").data)
    assert train.images.shape[1:] == (1, 16, 16) and train.max_shift == 1 and val.max_shift == 0
    assert float(train.images.min()) == -1.0 and len(train) + len(val) == 1797


def test_each_experiment_states_its_own_dataset_keys():
    """The base config names no dataset's options: an image-folder experiment has no digits keys, and a
    digits key given to it is refused by its builder."""
    assert {"size", "max_shift", "value_range"} <= set(compose("mlp_digits").data)
    assert not {"size", "max_shift", "value_range"} & set(compose("var_d16").data)
    with pytest.raises(ValueError, match=r"dataset 'image_folder' has no option\(s\) \['max_shift'\]"):
        build_datasets(compose("var_d16", ["+data.max_shift=3"]).data)

