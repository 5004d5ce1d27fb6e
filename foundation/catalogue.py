"""Product catalogues: what an edge sells, and what its model's labels mean.

A model version ships its catalogue (``catalogue.json``) beside its weights, so the
edge can answer a kiosk with the SKU's name, price and promotion without a lookup.
"""

from __future__ import annotations

from decimal import Decimal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from foundation.errors import InvalidInput
from foundation.layout import NAME_RE, SKU_RE


class Product(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    sku: str = Field(pattern=SKU_RE.pattern)
    name: str = Field(min_length=1, max_length=120)
    price: Decimal = Field(ge=0, max_digits=10, decimal_places=2)
    promotion: str | None = Field(default=None, max_length=120)


class Catalogue(BaseModel):
    """The products one edge (store) sells; each edge gets a model for its own catalogue."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    edge: str = Field(pattern=NAME_RE.pattern)
    currency: str = Field(default="EUR", pattern=r"^[A-Z]{3}$")
    products: list[Product] = Field(min_length=1)

    @property
    def skus(self) -> list[str]:
        return sorted(p.sku for p in self.products)

    def merged(self, products: list[Product]) -> Catalogue:
        """This catalogue with ``products`` added, or updated where the SKU is known; none dropped."""
        by_sku = {p.sku: p for p in self.products} | {p.sku: p for p in products}  # known order first
        return self.model_copy(update={"products": list(by_sku.values())})

    def without(self, skus: list[str]) -> Catalogue:
        """This catalogue less ``skus`` (retired on purpose); an edge keeps at least one product."""
        kept = [p for p in self.products if p.sku not in set(skus)]
        if not kept:
            raise InvalidInput(f"edge {self.edge}: retiring {sorted(skus)} would leave the catalogue empty")
        return self.model_copy(update={"products": kept})

    def product(self, sku: str) -> Product:
        for p in self.products:
            if p.sku == sku:
                return p
        raise InvalidInput(f"SKU {sku} is not in the catalogue of edge {self.edge}")

    def to_bytes(self) -> bytes:
        return self.model_dump_json(indent=2).encode()

    @classmethod
    def from_bytes(cls, raw: bytes) -> Catalogue:
        try:
            return cls.model_validate_json(raw)
        except ValidationError as exc:
            raise InvalidInput(f"invalid catalogue: {exc.errors()[0]['msg']}") from exc
