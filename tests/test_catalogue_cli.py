"""``edgecore catalogue upload | show | retire``: the catalogue changes only when someone means it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from edgecore.cli import app, common
from edgecore.synthetic.products import BOUTIQUE, demo_catalogue
from foundation.assortment import read_catalogue
from foundation.catalogue import Catalogue
from foundation.layout import Layout
from foundation.settings import Settings
from foundation.storage.store import ObjectStore
from testkit.training import tiny_store


@pytest.fixture(autouse=True)
def wide_console(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(common.out, "width", 250)


def _cli(settings: Settings, *args: str, answer: str | None = None) -> str:
    result = CliRunner().invoke(app, list(args), env={**os.environ, **settings.environment()}, input=answer)
    assert result.exit_code == (1 if answer == "n\n" else 0), result.output
    return result.output


def _only_one_product(folder: Path, sku: str) -> Path:
    """The folder as an operator might upload it: one product's photos and a catalogue of it alone."""
    catalogue = Catalogue.from_bytes((folder / "catalogue.json").read_bytes())
    for other in catalogue.skus:
        if other != sku:
            for photo in (folder / other).iterdir():
                photo.unlink()
            (folder / other).rmdir()
    (folder / "catalogue.json").write_bytes(catalogue.without(sorted(set(catalogue.skus) - {sku})).to_bytes())
    return folder


def test_an_upload_of_some_products_keeps_the_others_and_says_so(
    isolated: Settings, iso_store: ObjectStore, iso_layout: Layout, tmp_path: Path
) -> None:
    _cli(isolated, "catalogue", "upload", str(tiny_store(tmp_path / "all", BOUTIQUE, images=3)))
    one = _only_one_product(tiny_store(tmp_path / "one", BOUTIQUE, images=3), "CAVIAR-50")

    output = _cli(isolated, "catalogue", "upload", str(one))

    assert "stay in its catalogue" in output
    kept = read_catalogue(iso_store, iso_layout.core_catalogue_home(BOUTIQUE))
    assert kept is not None and kept.skus == demo_catalogue(BOUTIQUE).skus


def test_retiring_asks_first_and_is_shown_in_the_history(
    isolated: Settings, iso_store: ObjectStore, iso_layout: Layout, tmp_path: Path
) -> None:
    _cli(isolated, "catalogue", "upload", str(tiny_store(tmp_path / "all", BOUTIQUE, images=3)))
    retire = ["catalogue", "retire", "--edge", BOUTIQUE, "--sku", "CAVIAR-50", "--reason", "delisted"]

    _cli(isolated, *retire, answer="n\n")
    assert "CAVIAR-50" in read_catalogue(iso_store, iso_layout.core_catalogue_home(BOUTIQUE)).skus  # type: ignore[union-attr]
    _cli(isolated, *retire, answer="y\n")

    assert "CAVIAR-50" not in read_catalogue(iso_store, iso_layout.core_catalogue_home(BOUTIQUE)).skus  # type: ignore[union-attr]
    history = _cli(isolated, "catalogue", "show", "--edge", BOUTIQUE)
    assert "retire CAVIAR-50" in history and "delisted" in history
