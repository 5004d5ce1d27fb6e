"""``edgecore catalogue generate | import | upload``: photos to train on."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from edgecore.cli.common import cli_errors, console, out
from edgecore.synthetic.folder import LabelledFolder, import_photos
from edgecore.synthetic.generator import generate as generate_catalogue
from edgecore.synthetic.products import EDGES
from edgecore.synthetic.upload import upload_folder
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
) -> None:
    """Upload a labelled folder as a new dataset version and set the edge's catalogue."""
    settings = Settings()
    with cli_errors(), _progress("upload") as progress:
        folder = LabelledFolder.open(source)
        name = dataset or folder.catalogue.edge
        manifest = upload_folder(ObjectStore(settings.s3), Layout(settings.buckets), source, name, progress)
    images, labels = len(manifest.files), len(manifest.labels)
    out.print(f"dataset {manifest.name} {manifest.version}: {images} images, {labels} labels")
