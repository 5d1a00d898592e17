"""Reading a list the way a client's one pager does: page after page, by `next_cursor`."""

from __future__ import annotations

from typing import Any

from httpx import AsyncClient

from kai.kit.pagination import MAX_PAGE_SIZE


async def every_page(
    client: AsyncClient,
    url: str,
    *,
    headers: dict[str, str],
    limit: int,
    params: dict[str, Any] | None = None,
) -> list[list[dict[str, Any]]]:
    """The items of each page of `url`, `limit` a page, until `next_cursor` is null."""
    pages: list[list[dict[str, Any]]] = []
    cursor = None
    while True:
        query = {**(params or {}), "limit": limit, **({"cursor": cursor} if cursor else {})}
        answer = await client.get(url, params=query, headers=headers)
        assert answer.status_code == 200, f"{url}: {answer.text}"
        assert set(answer.json()) >= {"items", "next_cursor"}
        items = answer.json()["items"]
        assert len(items) <= limit
        pages.append(items)
        cursor = answer.json()["next_cursor"]
        if cursor is None:
            return pages
        assert items, f"{url}: an empty page before the last"
        assert len(pages) <= MAX_PAGE_SIZE, f"{url}: pages without end"
