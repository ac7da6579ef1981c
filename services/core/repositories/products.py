"""Products sold for Telegram Stars."""

import sqlalchemy as sa
from sqlmodel import col

from ..errors import NotFound
from ..schema import Product
from .base import Repository


class ProductRepository(Repository):
    async def active(self, limit: int) -> list[Product]:
        """The products on sale, cheapest first (at most `limit`)."""
        result = await self.session.execute(
            sa.select(Product)
            .where(col(Product.is_active))
            .order_by(col(Product.price_stars), col(Product.id))
            .limit(limit)
        )
        return list(result.scalars())

    async def find(self, product_id: int) -> Product | None:
        """A product on sale or not; None if there is no such product."""
        return await self.session.get(Product, product_id)

    async def get(self, product_id: int, *, lock: bool = False) -> Product:
        product = await self.session.get(Product, product_id, with_for_update=lock)
        if product is None:
            raise NotFound("product", product_id)
        return product

    async def all(self, *, include_inactive: bool = False) -> list[Product]:
        """Products in id order: those on sale, or all."""
        query = sa.select(Product).order_by(col(Product.id))
        if not include_inactive:
            query = query.where(col(Product.is_active))
        return list((await self.session.execute(query)).scalars())
