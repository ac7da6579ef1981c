"""Products sold for Telegram Stars: anyone may read them, only admins change them."""

from __future__ import annotations

import sqlalchemy as sa
from fastapi import APIRouter
from sqlmodel import col

from services.core.db import UnitOfWork
from services.core.errors import NotFound
from services.core.schema import Product

from .. import audit
from ..patching import changes
from ..problems import problem_responses
from ..schemas import ProductCreate, ProductOut, ProductUpdate
from .deps import Admin, DatabaseDep, Id, Viewer

router = APIRouter(prefix="/products", tags=["products"])


async def _product(uow: UnitOfWork, product_id: int) -> Product:
    product = await uow.session.get(Product, product_id, with_for_update=True)
    if product is None:
        raise NotFound("product", product_id)
    return product


@router.get("", response_model=list[ProductOut])
async def list_products(
    database: DatabaseDep, _: Viewer, include_inactive: bool = False
) -> list[Product]:
    query = sa.select(Product).order_by(col(Product.id))
    if not include_inactive:
        query = query.where(col(Product.is_active))
    async with database.unit_of_work() as uow:
        return list((await uow.session.execute(query)).scalars())


@router.post("", response_model=ProductOut, status_code=201, responses=problem_responses(409, 422))
async def create_product(database: DatabaseDep, who: Admin, body: ProductCreate) -> Product:
    """Creates a product; a code already in use is a conflict (409)."""
    async with database.unit_of_work() as uow:
        product = Product(**body.model_dump())
        uow.session.add(product)
        await uow.session.flush()
        await uow.session.refresh(product)
        audit.record(uow, who, "product.create", "product", product.id, body.model_dump())
    return product


@router.patch("/{product_id}", response_model=ProductOut, responses=problem_responses(404, 422))
async def update_product(
    database: DatabaseDep, who: Admin, product_id: Id, body: ProductUpdate
) -> Product:
    """Changes the given fields (is_active true puts it back on sale); fields left out keep
    their value. Unknown fields are refused (422)."""
    async with database.unit_of_work() as uow:
        product = await _product(uow, product_id)
        summary = changes(product, body)
        if summary:
            await uow.session.flush()
            await uow.session.refresh(product)
            audit.record(uow, who, "product.update", "product", product_id, summary)
    return product


@router.post(
    "/{product_id}/deactivate", response_model=ProductOut, responses=problem_responses(404)
)
async def deactivate_product(database: DatabaseDep, who: Admin, product_id: Id) -> Product:
    """Takes the product off sale; its past payments keep referring to it."""
    async with database.unit_of_work() as uow:
        product = await _product(uow, product_id)
        was = product.is_active
        if not was:
            return product  # already off sale: nothing to write or audit
        product.is_active = False
        await uow.session.flush()
        await uow.session.refresh(product)
        audit.record(
            uow, who, "product.deactivate", "product", product_id, {"is_active": [was, False]}
        )
    return product
