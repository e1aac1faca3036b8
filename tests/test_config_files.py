"""Every YAML is untrusted: bounded in size, nesting and expanded aliases before it loads, and
no class is imported that is not allowed."""

import pytest

from tests.conftest import run_cli

ALIASES = "its YAML aliases expand to more than 100,000 values, more than a config can hold; "
ALIASES += "write the values out instead of aliasing them"


def bomb_lines() -> list[str]:
    """Ten levels of ten aliases each: 10**10 values once expanded, from under 500 bytes."""
    lines = ['a: &a ["x", "x", "x", "x", "x", "x", "x", "x", "x", "x"]']
    for level in "bcdefghij":
        lines.append(f"{level}: &{level} [{', '.join([f'*{chr(ord(level) - 1)}'] * 10)}]")
    return lines


def test_lightning_s_own_callbacks_are_still_allowed():
    from makemore_pl.cli.class_paths import allowed

    assert allowed("lightning.pytorch.callbacks.EarlyStopping")
    assert allowed("makemore_pl.model.BigramLitModule")  # a legacy class path
    assert allowed("ModelCheckpoint")  # a bare name: looked up among classes imported
    assert not allowed("lightning.pytorch.callbacksx.Evil")
    assert not allowed("os.system")


def test_a_run_config_and_a_plain_config_are_loaded_bounded(cwd):
    from makemore_pl.cli.config_files import ConfigTooLarge
    from makemore_pl.cli.plain.command import data_sections_only
    from makemore_pl.cli.resume import run_config

    (cwd / "bomb.yaml").write_text("\n".join(bomb_lines()) + "\n")
    with pytest.raises(ConfigTooLarge, match=ALIASES):
        run_config(cwd / "bomb.yaml")
    with pytest.raises(ConfigTooLarge, match=ALIASES):
        data_sections_only(["--config", "bomb.yaml"])


def test_a_config_of_nested_aliases_is_refused_before_it_expands(tmp_path):
    (tmp_path / "bomb.yaml").write_text("\n".join(bomb_lines()) + "\n")
    for command in ("fit", "baseline"):
        with pytest.raises(SystemExit, match="bomb.yaml: its YAML aliases expand to"):
            run_cli(command, "--config", "bomb.yaml", cwd=tmp_path)
