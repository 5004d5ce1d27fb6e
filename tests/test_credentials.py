"""A tokens file is the truth about who may call: read again on every change, never kept once removed."""

from __future__ import annotations

import json
import secrets
from pathlib import Path

import pytest

from foundation.credentials import Credentials, check_strength, new_token, write_tokens_file


def test_a_token_added_to_the_file_is_valid_without_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "tokens.json"
    first, second = new_token(), new_token()
    write_tokens_file(path, {"north": [first]})
    credentials = Credentials("edge", path=path)

    write_tokens_file(path, {"north": [first, second]})

    assert credentials.owner(second) == "north"


def test_a_rewrite_of_the_same_size_in_the_same_second_is_seen(tmp_path: Path) -> None:
    path = tmp_path / "tokens.json"
    old, new = new_token(), new_token()
    write_tokens_file(path, {"north": [old]})
    credentials = Credentials("edge", path=path)

    write_tokens_file(path, {"north": [new]})  # same length: same size, same second

    assert credentials.owner(old) is None and credentials.owner(new) == "north"


def test_a_removed_tokens_file_leaves_none_of_its_tokens_valid(tmp_path: Path) -> None:
    path = tmp_path / "tokens.json"
    token = new_token()
    path.write_text(json.dumps({"north": [token]}))
    credentials = Credentials("edge", path=path)
    assert credentials.owner(token) == "north"

    path.unlink()

    assert credentials.owner(token) is None


def test_tokens_files_are_never_readable_by_others(tmp_path: Path) -> None:
    path = tmp_path / "tokens.json"
    write_tokens_file(path, {"north": [new_token()]})
    assert path.stat().st_mode & 0o077 == 0


def test_a_new_token_that_happens_to_spell_a_placeholder_is_drawn_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    drawn = iter(["Ab9-xXxX-" + "q" * 20 + "7Zk_cDeFgHiJ", "Ab9-Tr4P-" + "q" * 20 + "7Zk_cDeFgHiJ"])
    monkeypatch.setattr(secrets, "token_urlsafe", lambda _bytes: next(drawn))
    token = new_token()
    assert "xxxx" not in token.lower()
    check_strength(token, "the second draw")
