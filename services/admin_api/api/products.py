"""Products sold for Telegram Stars: anyone may read them, only admins change them."""

from __future__ import annotations

from fastapi import APIRouter

from services.core.schema import Product

from .. import audit
from ..patching import changes
from ..problems import problem_responses
from ..schemas import ProductCreate, ProductOut, ProductUpdate
from .deps import Admin, DatabaseDep, Id, Viewer

router = APIRouter(prefix="/products", tags=["products"])


@router.get("", response_model=list[ProductOut])
async def list_products(
    database: DatabaseDep, _: Viewer, include_inactive: bool = False
) -> list[Product]:
    async with database.unit_of_work() as uow:
        return await uow.products.all(include_inactive=include_inactive)


@router.post("", response_model=ProductOut, status_code=201, responses=problem_responses(409, 422))
async def create_product(database: DatabaseDep, who: Admin, body: ProductCreate) -> Product:
    """Creates a product; a code already in use is a conflict (409)."""
    async with database.unit_of_work() as uow:
        product = await uow.products.save(Product(**body.model_dump()))
        audit.record(uow, who, "product.create", "product", product.id, body.model_dump())
    return product


@router.patch("/{product_id}", response_model=ProductOut, responses=problem_responses(404, 422))
async def update_product(
    database: DatabaseDep, who: Admin, product_id: Id, body: ProductUpdate
) -> Product:
    """Changes the given fields (is_active true puts it back on sale); fields left out keep
    their value. Unknown fields are refused (422)."""
    async with database.unit_of_work() as uow:
        product = await uow.products.get(product_id, lock=True)
        summary = changes(product, body)
        if summary:
            await uow.products.save(product)
            audit.record(uow, who, "product.update", "product", product_id, summary)
    return product


@router.post(
    "/{product_id}/deactivate", response_model=ProductOut, responses=problem_responses(404)
)
async def deactivate_product(database: DatabaseDep, who: Admin, product_id: Id) -> Product:
    """Takes the product off sale; its past payments keep referring to it."""
    async with database.unit_of_work() as uow:
        product = await uow.products.get(product_id, lock=True)
        was = product.is_active
        if not was:
            return product  # already off sale: nothing to write or audit
        product.is_active = False
        await uow.products.save(product)
        audit.record(
            uow, who, "product.deactivate", "product", product_id, {"is_active": [was, False]}
        )
    return product
