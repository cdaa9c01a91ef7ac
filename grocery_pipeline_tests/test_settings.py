from datetime import date

import pytest

from grocery_pipeline.settings import PRESETS, SettingsError, load_settings


def test_default_preset_is_small_with_fixed_seed_and_start():
    s = load_settings(env={})
    assert s.preset == "small"
    assert s.stores == 10 and s.customers == 5_000 and s.products == 600
    assert s.start_date == date(2025, 1, 1)
    assert s.seed == 20250101


@pytest.mark.parametrize("preset", list(PRESETS))
def test_every_preset_resolves_its_volumes(preset):
    s = load_settings(env={}, preset=preset)
    for field, value in PRESETS[preset].items():
        assert getattr(s, field) == value


def test_environment_overrides_preset_and_keywords_override_environment():
    env = {"GROCERY_PRESET": "tiny", "GROCERY_STORES": "7", "GROCERY_SEED": "42"}
    s = load_settings(env=env)
    assert (s.preset, s.stores, s.seed, s.customers) == ("tiny", 7, 42, 500)
    assert load_settings(env=env, stores=9).stores == 9


@pytest.mark.parametrize(
    "kwargs, field, expected",
    [
        ({"preset": "huge"}, "preset", "tiny, small, medium, xl"),
        ({"customers": -5}, "customers", ">= 1"),
        ({"stores": "ten"}, "stores", "whole number"),
        ({"start_date": "2025-13-01"}, "start_date", "YYYY-MM-DD"),
        ({"start_date": "2025-06-01", "end_date": "2025-05-01"}, "end_date", "on or after start_date"),
        ({"faults": "melt_down"}, "faults", "orphan_fk"),
        ({"price_tick_cron": "hourly"}, "price_tick_cron", "cron"),
    ],
)
def test_bad_settings_fail_naming_the_field_and_what_is_allowed(kwargs, field, expected):
    with pytest.raises(SettingsError) as error:
        load_settings(env={}, **kwargs)
    assert f"'{field}'" in str(error.value)
    assert expected in str(error.value)


def test_bad_environment_value_names_the_field():
    with pytest.raises(SettingsError, match="'seed'"):
        load_settings(env={"GROCERY_SEED": "abc"})


def test_unknown_keyword_setting_is_rejected():
    with pytest.raises(SettingsError, match="unknown setting"):
        load_settings(env={}, storez=3)
