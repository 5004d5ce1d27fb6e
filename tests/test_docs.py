"""The settings reference in docs/ is generated from the settings objects; every setting is described."""

from __future__ import annotations

from pathlib import Path

from edgecore.cli.settings import reference_text
from edgecore.stack.settings import StackSettings
from foundation.settings import Settings

DOC = Path(__file__).resolve().parents[1] / "docs" / "settings.md"


def test_the_settings_reference_is_generated_from_the_settings_objects() -> None:
    text = DOC.read_text()
    start = text.index("<!-- settings:start -->\n") + len("<!-- settings:start -->\n")
    end = text.index("<!-- settings:end -->")
    assert text[start:end] == reference_text(), "regenerate with `edgecore settings reference`"


def test_every_setting_is_documented() -> None:
    settings = Settings()
    groups = [type(group) for _, group in settings if hasattr(group, "model_fields")] + [StackSettings]
    missing = [f"{g.__name__}.{n}" for g in groups for n, f in g.model_fields.items() if not f.description]
    assert missing == []
