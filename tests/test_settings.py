"""Settings come from SURGE_* variables; production refuses the laptop defaults."""

from __future__ import annotations

from pathlib import Path

import pytest

from backend.settings import SettingsError, load_settings, settings_table


def test_defaults_work_on_a_laptop():
    settings = load_settings({})
    assert settings.is_sqlite and settings.redis.url is None
    assert settings.production_problems() == [] and settings.configuration_problems() == []


def test_values_are_parsed_to_their_types():
    settings = load_settings(
        {"SURGE_PORT": "9001", "SURGE_LOG_JSON": "false", "SURGE_REDIS_URL": "redis://r:6379"}
    )
    assert settings.server.port == 9001 and settings.server.log_json is False
    assert settings.redis.url == "redis://r:6379"


def test_an_unparseable_value_names_the_setting():
    with pytest.raises(SettingsError, match="ServerSettings"):
        load_settings({"SURGE_PORT": "eighty"})


def test_models_come_as_json():
    settings = load_settings(
        {
            "SURGE_MODELS": '[{"id": "r1", "display_name": "R1", "workers": ["http://gpu1:30000"], "thinking": "always"}]'
        }
    )
    assert settings.inference.default.id == "r1" and settings.inference.default.thinking == "always"
    with pytest.raises(SettingsError, match="SURGE_MODELS"):
        load_settings({"SURGE_MODELS": "[{not json"})


def test_production_refuses_insecure_defaults():
    problems = load_settings({"SURGE_ENV": "production"}).production_problems()
    assert any("SURGE_JWT_SECRET" in problem for problem in problems)
    assert any("SURGE_DATABASE_URL" in problem for problem in problems)


def test_production_accepts_a_real_configuration():
    settings = load_settings(
        {
            "SURGE_ENV": "production",
            "SURGE_JWT_SECRET": "pV3x9QmZ-2LtR7wKc_8nYbH4sJfD6gA1eUoTiE5rW0q",
            "SURGE_PUBLIC_URL": "https://chat.example.com",
            "SURGE_DATABASE_URL": "postgresql+asyncpg://surge@db/surge",
            "SURGE_REDIS_URL": "redis://redis:6379/0",
            "SURGE_WORKERS": "4",
        }
    )
    assert settings.production_problems() == []


def test_create_app_refuses_to_start_in_production_with_a_default_secret():
    from backend.app import create_app

    with pytest.raises(SystemExit, match="SURGE_JWT_SECRET"):
        create_app(load_settings({"SURGE_ENV": "production"}))


def test_the_readme_configuration_table_is_the_generated_one():
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    assert settings_table() in readme, "run `uv run surge settings` and paste the table into README.md"


def test_every_setting_has_its_own_variable():
    import msgspec

    from backend.settings import GROUPS, env_name

    names = [
        env_name(group, field.name) for group in GROUPS.values() for field in msgspec.structs.fields(group)
    ]
    assert len(names) == len(set(names))
