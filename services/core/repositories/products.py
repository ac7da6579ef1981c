"""Products sold for Telegram Stars."""

import sqlalchemy as sa
from sqlmodel import col

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
