"""Settings: the shipped config.toml, environment overrides, one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import ROOT
from twin.api.settings import ServeSettings
from twin.settings import Settings, SettingsError, TelegramSettings, load_settings


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
        (
            "[train]\nmax_steps = -3\n",
            "train.max_steps: Input should be greater than or equal to 1",
        ),
        ("[train]\nmax_step = 3\n", "train.max_step: unknown setting; did you mean max_steps?"),
        ("[trian]\nmax_steps = 3\n", "trian: unknown setting; did you mean train?"),
    ],
)
def test_errors_name_the_key(tmp_path: Path, text: str, message: str) -> None:
    config = tmp_path / "c.toml"
    config.write_text(text)
    with pytest.raises(SettingsError, match=message) as caught:
        load_settings(config)
    assert "\n" not in str(caught.value)
    assert str(caught.value).startswith(f"{config}: ")


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("TWIN_TRAIN__MAX_STEPS", "abc", "TWIN_TRAIN__MAX_STEPS: Input should be a valid integer"),
        ("TWIN_TRAIN__MAX_STEP", "3", "TWIN_TRAIN__MAX_STEP: no such setting; did you mean "),
        ("TWIN_TRAN__MAX_STEPS", "3", "did you mean TWIN_TRAIN__MAX_STEPS?"),
        ("twin_train__max_steps", "0", "TWIN_TRAIN__MAX_STEPS: Input should be greater"),
    ],
)
def test_an_environment_variable_is_named_when_it_is_wrong(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, variable: str, value: str, message: str
) -> None:
    config = tmp_path / "c.toml"
    config.write_text("[train]\nepochs = 2\n")
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError, match=message) as caught:
        load_settings(config)
    assert str(config) not in str(caught.value)  # the file is not where the mistake is


@pytest.mark.parametrize(
    "text",
    [
        "[telegram]\nbot_token = 123456789\n",
        "[serve]\ntoken = 123456789\n",
        "[telegram]\nsession = 123456789\n",
    ],
)
def test_a_secret_in_a_config_error_is_never_shown(tmp_path: Path, text: str) -> None:
    config = tmp_path / "c.toml"
    config.write_text(text)
    with pytest.raises(SettingsError, match="valid string") as caught:
        load_settings(config)
    assert "123456789" not in str(caught.value)


def test_a_secret_file_others_can_read_is_refused(tmp_path: Path) -> None:
    from twin.wiring import serve_token

    token = tmp_path / "token"
    token.write_text("s3cret\n", encoding="utf-8")
    token.chmod(0o644)
    with pytest.raises(SettingsError, match="others can read this secret") as caught:
        serve_token(ServeSettings(token_file=token))
    assert "s3cret" not in str(caught.value)
    with pytest.raises(SettingsError, match="others can read this secret"):
        TelegramSettings(bot_token_file=token).token()
    token.chmod(0o600)
    assert serve_token(ServeSettings(token_file=token)) == "s3cret"


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
