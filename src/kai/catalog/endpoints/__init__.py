"""Every HTTP route of the catalog."""

from fastapi import APIRouter

from kai.catalog.endpoints import categories, images, materials, settings, transfers

ROUTERS: tuple[APIRouter, ...] = (
    categories.router,
    materials.router,
    images.router,
    transfers.router,
    settings.router,
)
