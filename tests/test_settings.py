"""Settings: the shipped config.toml, environment overrides, one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import ROOT
from twin.settings import Settings, SettingsError, load_settings


def test_shipped_config_is_valid_and_states_the_defaults() -> None:
    assert load_settings(ROOT / "config.toml") == Settings()


def test_environment_overrides_the_file_with_nested_keys(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "c.toml"
    config.write_text(
        'data_dir = "from_file"\n[dataset]\nsession_gap = "2h"\n[telegram]\nowner_id = 5\n'
    )
    monkeypatch.setenv("TWIN_TELEGRAM__OWNER_ID", "7")
    monkeypatch.setenv("TWIN_DATASET__VAL_FRACTION", "0.25")
    settings = load_settings(config)
    assert settings.data_dir == Path("from_file")
    assert settings.dataset.session_gap == 7200
    assert settings.telegram.owner_id == 7
    assert settings.dataset.val_fraction == 0.25
    assert settings.db_path == Path("from_file/twin.db")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[dataset]\nval_fraction = 2\n", "dataset.val_fraction: Value error, must be at least 0"),
        ('[dataset]\nsession_gap = "soon"\n', "dataset.session_gap: Value error, a duration"),
        ("[nope]\nx = 1\n", "nope: unknown setting"),
        ("data_dir = [", "not valid TOML"),
    ],
)
def test_errors_name_the_key(tmp_path: Path, text: str, message: str) -> None:
    config = tmp_path / "c.toml"
    config.write_text(text)
    with pytest.raises(SettingsError, match=message) as caught:
        load_settings(config)
    assert "\n" not in str(caught.value)


def test_config_toml_is_generated_from_the_settings_definitions() -> None:
    """Each setting is defined once, with its default and comment, in its section's
    model; the shipped file is their rendering and cannot drift from them."""
    from twin.config_file import render

    assert (ROOT / "config.toml").read_text(encoding="utf-8") == render(), (
        "config.toml is stale: python -m twin.config_file > config.toml"
    )


def test_secrets_have_no_line_in_the_config_file() -> None:
    from twin.config_file import render

    text = render()
    for secret in ("bot_token =", "api_hash =", "session ="):
        assert secret not in text
