"""``edgecore catalogue generate | import | upload | retire | show``: photos, and what an edge sells."""

from __future__ import annotations

import getpass
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from edgecore.cli.common import cli_errors, console, out
from edgecore.synthetic.folder import LabelledFolder, import_photos
from edgecore.synthetic.generator import generate as generate_catalogue
from edgecore.synthetic.products import EDGES
from edgecore.synthetic.upload import upload_folder
from foundation.assortment import changes, read_catalogue, retire_products
from foundation.layout import Layout
from foundation.settings import Settings
from foundation.storage.store import ObjectStore

app = typer.Typer(no_args_is_help=True)


@contextmanager
def _progress(what: str) -> Iterator[Callable[[int, int], None]]:
    with Progress(
        TextColumn(what), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console
    ) as bar:
        task = bar.add_task(what, total=None)
        yield lambda done, total: bar.update(task, completed=done, total=total)


@app.command()
def generate(
    out_dir: Path = typer.Option(Path("catalogue"), "--out", help="Folder to write <edge>/<SKU>/*.jpg into."),
    seed: int = typer.Option(7, help="Same seed, same photos."),
    images: int = typer.Option(80, min=1, max=5000, help="Photos per product."),
    edge: list[str] = typer.Option(list(EDGES), help="Demo stores to generate (repeatable)."),
    new_product: bool = typer.Option(False, "--new-product", help="Include the product that arrives later."),
) -> None:
    """Generate the demo stores' kiosk photos and catalogues (deterministic by seed)."""
    with cli_errors():
        for name in edge:
            with _progress(f"{name}") as progress:
                catalogue = generate_catalogue(out_dir, seed, images, [name], new_product, progress)[0]
            out.print(f"{out_dir / name}: {len(catalogue.products)} products × {images} photos")


@app.command("import")
def import_(
    source: Path = typer.Argument(..., help="Folder of <label>/*.jpg photos."),
    edge: str = typer.Option(..., help="Edge (store) id the photos belong to."),
    out_dir: Path = typer.Option(Path("catalogue"), "--out", help="Folder to write <edge>/<SKU>/ into."),
) -> None:
    """Import real photos, one folder per label, into the labelled folder layout."""
    with cli_errors(), _progress("import") as progress:
        catalogue = import_photos(source, edge, out_dir, progress)
    out.print(f"{out_dir / edge}: {len(catalogue.products)} products: {', '.join(catalogue.skus)}")


@app.command()
def upload(
    source: Path = typer.Argument(..., help="A labelled folder <edge>/ with catalogue.json and <SKU>/*.jpg."),
    dataset: str | None = typer.Option(
        None, help="Dataset name (default: the edge id, as edge sync names them)."
    ),
    blur_faces: bool = typer.Option(
        False, help="The photos may show people: training blurs the faces it finds (slower; see docs)."
    ),
) -> None:
    """Upload a labelled folder as a new dataset version and add its products to the edge's catalogue.

    Products the edge sells that the folder lacks stay in its catalogue (and in its next
    model); `edgecore catalogue retire` is how a product leaves.
    """
    settings = Settings()
    with cli_errors(), _progress("upload") as progress:
        folder = LabelledFolder.open(source)
        name = dataset or folder.catalogue.edge
        store, layout = ObjectStore(settings.s3), Layout(settings.buckets)
        manifest = upload_folder(store, layout, source, name, progress, blur_faces=blur_faces)
        catalogue = read_catalogue(store, layout.core_catalogue_home(folder.catalogue.edge))
    images, labels = len(manifest.files), len(manifest.labels)
    out.print(f"dataset {manifest.name} {manifest.version}: {images} images, {labels} labels")
    kept = sorted(set(catalogue.skus if catalogue else []) - set(manifest.labels))
    if catalogue is not None and kept:
        out.print(
            f"edge {catalogue.edge} sells {len(catalogue.skus)} products; {', '.join(kept)} were not in this "
            f"folder and stay in its catalogue and its next model ({_RETIRE_HINT})"
        )


@app.command()
def retire(
    edge: str = typer.Option(..., help="Edge (store) id."),
    sku: list[str] = typer.Option(..., help="SKU the store no longer sells (repeatable)."),
    reason: str = typer.Option("", help="Why, for the record."),
    yes: bool = typer.Option(False, "--yes", help="Do not ask for confirmation."),
) -> None:
    """Take products out of an edge's catalogue on purpose; its next model may then forget them.

    This is the only way a product leaves a catalogue: uploads add products, never remove
    them.  The change is recorded (who, when, why) in the core's copy of the catalogue.
    """
    settings = Settings()
    if not yes:
        typer.confirm(
            f"Retire {', '.join(sku)} from edge {edge}? Its next model will not know them", abort=True
        )
    with cli_errors():
        home = Layout(settings.buckets).core_catalogue_home(edge)
        remaining = retire_products(ObjectStore(settings.s3), home, sku, by=_operator(), reason=reason)
    out.print(f"edge {edge} sells {len(remaining.products)} products: {', '.join(remaining.skus)}")


@app.command()
def show(edge: str = typer.Option(..., help="Edge (store) id.")) -> None:
    """What an edge sells, and every recorded change of its catalogue."""
    settings = Settings()
    store, layout = ObjectStore(settings.s3), Layout(settings.buckets)
    with cli_errors():
        home = layout.core_catalogue_home(edge)
        catalogue = read_catalogue(store, home)
        history = changes(store, home)
    if catalogue is None:
        out.print(f"edge {edge} has no catalogue yet")
        return
    table = Table("SKU", "name", "price", "promotion", title=f"edge {edge}")
    for p in catalogue.products:
        table.add_row(p.sku, p.name, f"{p.price} {catalogue.currency}", p.promotion or "")
    out.print(table)
    for change in history:
        when, skus = f"{change.at:%Y-%m-%d %H:%M:%S}", ", ".join(change.skus)
        out.print(f"{when} {change.action} {skus} by {change.by} {change.reason}".rstrip())


_RETIRE_HINT = "edgecore catalogue retire removes a product"


def _operator() -> str:
    return os.environ.get("USER") or getpass.getuser()
