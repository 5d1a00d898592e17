// The catalog's server calls, shared by its screens.
import { useQuery } from "@tanstack/react-query";

import { api, type Schemas } from "../../api/client";
import { unwrap } from "../../api/problem";

export type Category = Schemas["CategoryRead"];
export type Material = Schemas["MaterialRead"];
export type MaterialImage = Schemas["ImageRead"];

/** Every category, parents before children, siblings in their order. */
export async function fetchAllCategories(): Promise<Category[]> {
  const all: Category[] = [];
  let cursor: string | undefined;
  do {
    const page = unwrap(await api.GET("/api/v1/categories", { params: { query: { limit: 200, cursor } } }));
    all.push(...page.items);
    cursor = page.next_cursor ?? undefined;
  } while (cursor);
  return all;
}

export function useCategories() {
  return useQuery({ queryKey: ["categories"], queryFn: fetchAllCategories, staleTime: 60_000 });
}

export interface TreeNode {
  category: Category;
  depth: number;
}

/** Categories in tree order (each parent followed by its subtree), with their depth. */
export function treeOrder(categories: Category[]): TreeNode[] {
  const children = new Map<string | null, Category[]>();
  const known = new Set(categories.map((category) => category.id));
  for (const category of categories) {
    const parent = category.parent_id && known.has(category.parent_id) ? category.parent_id : null;
    children.set(parent, [...(children.get(parent) ?? []), category]);
  }
  const ordered: TreeNode[] = [];
  const visit = (parent: string | null, depth: number) => {
    const siblings = [...(children.get(parent) ?? [])].sort(
      (a, b) => a.position - b.position || a.name.localeCompare(b.name),
    );
    for (const category of siblings) {
      ordered.push({ category, depth });
      visit(category.id, depth + 1);
    }
  };
  visit(null, 0);
  return ordered;
}

/** "Stone › Marble": a category with its ancestors. */
export function categoryPath(category: Category, byId: Map<string, Category>): string {
  return [...category.path.map((id) => byId.get(id)?.name ?? "…"), category.name].join(" › ");
}

async function fetchImages(materialId: string): Promise<MaterialImage[]> {
  return unwrap(
    await api.GET("/api/v1/materials/{material_id}/images", {
      params: { path: { material_id: materialId }, query: { limit: 200 } },
    }),
  ).items;
}

export function useImages(materialId: string) {
  return useQuery({ queryKey: ["materials", materialId, "images"], queryFn: () => fetchImages(materialId) });
}

export function etagOf(material: Material): string {
  return `"${material.version}"`;
}
