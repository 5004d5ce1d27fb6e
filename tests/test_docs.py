"""The README's settings reference is the one the settings object generates."""

from __future__ import annotations

from pathlib import Path

from edgecore.settings import Settings, settings_reference

README = Path(__file__).resolve().parents[1] / "README.md"


def test_the_readme_settings_reference_is_generated_from_the_settings_object() -> None:
    text = README.read_text()
    start = text.index("<!-- settings:start -->\n") + len("<!-- settings:start -->\n")
    end = text.index("<!-- settings:end -->")
    assert text[start:end] == settings_reference(), "regenerate with `edgecore settings reference`"


def test_every_setting_is_documented() -> None:
    assert [name for name, field in Settings.model_fields.items() if not field.description] == []
