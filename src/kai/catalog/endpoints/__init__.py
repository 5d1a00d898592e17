"""Every HTTP route of the catalog."""

from fastapi import APIRouter

from kai.catalog.endpoints import categories, images, materials, transfers

ROUTERS: tuple[APIRouter, ...] = (
    categories.router,
    materials.router,
    images.router,
    transfers.router,
)
