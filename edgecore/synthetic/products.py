"""The demo stores: a hypermarket, a boutique, the SKUs they share, and a late arrival.

Packaging designs are assigned by position in :data:`UNIVERSE` (not drawn at random), so
a SKU sold by both stores looks the same in both, as a real product would.  Products of
one :data:`FAMILIES` entry are variants of one brand, as on real shelves: same shape and
pattern, a nearby colour and another name on the label, so a model must learn more than
the silhouette and the dominant colour to tell them apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from foundation.catalogue import Catalogue, Product

HYPERMARKET = "hypermarket"
BOUTIQUE = "boutique"
NEW_PRODUCT_EDGE = HYPERMARKET

SHAPES = ("box", "bottle", "can", "jar", "pouch", "tube")
PATTERNS = ("stripes", "dots", "checks", "waves", "diagonal", "band")


@dataclass(frozen=True)
class DemoProduct:
    product: Product
    edges: tuple[str, ...]
    new: bool = False


def _p(sku: str, name: str, price: str, promotion: str | None = None) -> Product:
    return Product(sku=sku, name=name, price=Decimal(price), promotion=promotion)


UNIVERSE: tuple[DemoProduct, ...] = (
    DemoProduct(_p("MILK-1L", "Whole Milk 1 L", "1.19"), (HYPERMARKET,)),
    DemoProduct(_p("BREAD-WHT", "White Sandwich Bread", "1.49"), (HYPERMARKET,)),
    DemoProduct(_p("PASTA-500", "Penne Rigate 500 g", "0.99", "3 for 2"), (HYPERMARKET,)),
    DemoProduct(_p("RICE-1KG", "Long Grain Rice 1 kg", "1.89"), (HYPERMARKET,)),
    DemoProduct(_p("CEREAL-375", "Honey Corn Flakes", "2.79"), (HYPERMARKET,)),
    DemoProduct(_p("TOMATO-400", "Chopped Tomatoes", "0.69", "-20%"), (HYPERMARKET,)),
    DemoProduct(_p("COLA-2L", "Cola 2 L", "1.99"), (HYPERMARKET,)),
    DemoProduct(_p("SOAP-LIQ", "Liquid Hand Soap", "2.49"), (HYPERMARKET,)),
    DemoProduct(_p("TOOTHP-75", "Mint Toothpaste", "1.69", "2nd at half price"), (HYPERMARKET,)),
    DemoProduct(_p("COFFEE-250", "Ground Coffee 250 g", "3.99"), (HYPERMARKET, BOUTIQUE)),
    DemoProduct(_p("CHOC-DARK", "Dark Chocolate 70%", "2.29"), (HYPERMARKET, BOUTIQUE)),
    DemoProduct(_p("OLIVE-500", "Extra Virgin Olive Oil", "6.49"), (HYPERMARKET, BOUTIQUE)),
    DemoProduct(_p("CHAMP-BRUT", "Champagne Brut", "39.90"), (BOUTIQUE,)),
    DemoProduct(_p("CAVIAR-50", "Oscietra Caviar 50 g", "89.00"), (BOUTIQUE,)),
    DemoProduct(_p("TRUFFLE-OIL", "White Truffle Oil", "24.50", "gift wrap included"), (BOUTIQUE,)),
    DemoProduct(_p("KOMBU-GNG", "Ginger Kombucha", "2.99", "new"), (NEW_PRODUCT_EDGE,), new=True),
)

EDGES = (HYPERMARKET, BOUTIQUE)

FAMILIES: tuple[tuple[str, ...], ...] = (
    ("PASTA-500", "RICE-1KG", "CEREAL-375"),
    ("COLA-2L", "SOAP-LIQ"),
    ("OLIVE-500", "TRUFFLE-OIL", "CHAMP-BRUT"),
    ("COFFEE-250", "CHOC-DARK"),
)


def family_of(sku: str) -> tuple[str, int]:
    """(the SKU whose design its family shares, its place in the family); itself and 0 if none."""
    for family in FAMILIES:
        if sku in family:
            return family[0], family.index(sku)
    return sku, 0


def design_index(sku: str) -> int:
    for i, item in enumerate(UNIVERSE):
        if item.product.sku == sku:
            return i
    raise KeyError(sku)


def new_product() -> Product:
    return next(item.product for item in UNIVERSE if item.new)


def demo_catalogue(edge: str, with_new_product: bool = False) -> Catalogue:
    """The catalogue of one demo store; the new product only once it has arrived."""
    products = [
        item.product for item in UNIVERSE if edge in item.edges and (with_new_product or not item.new)
    ]
    if not products:
        raise KeyError(f"no demo store named {edge!r}; choose one of {EDGES}")
    return Catalogue(edge=edge, currency="EUR", products=products)
