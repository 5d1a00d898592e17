// The category tree from the flat list the API pages through, and the edits on it.
import type { Schemas } from "../../api/client";

export type Category = Schemas["CategoryRead"];

export interface TreeNode {
  category: Category;
  depth: number;
  children: TreeNode[];
}

function bySiblingOrder(a: Category, b: Category): number {
  return a.position - b.position || a.name.localeCompare(b.name);
}

/** Top-level categories first, each followed by its subcategories, siblings by position. */
export function buildTree(categories: Category[]): TreeNode[] {
  const children = new Map<string | null, Category[]>();
  const known = new Set(categories.map((category) => category.id));
  for (const category of categories) {
    // A parent not in the list (should not happen) puts the child at the top, not nowhere.
    const parent = category.parent_id && known.has(category.parent_id) ? category.parent_id : null;
    children.set(parent, [...(children.get(parent) ?? []), category]);
  }
  const grow = (parent: string | null, depth: number): TreeNode[] =>
    (children.get(parent) ?? [])
      .sort(bySiblingOrder)
      .map((category) => ({ category, depth, children: grow(category.id, depth + 1) }));
  return grow(null, 0);
}

/** The tree as rows, in reading order. */
export function flatten(nodes: TreeNode[]): TreeNode[] {
  return nodes.flatMap((node) => [node, ...flatten(node.children)]);
}

/** The category and everything under it: where it may not be moved. */
export function subtreeIds(categories: Category[], id: string): Set<string> {
  return new Set(categories.filter((category) => category.id === id || category.path.includes(id)).map((c) => c.id));
}

/** "Stone › Marble": the names from the top down to the category. */
export function pathName(categories: Category[], id: string): string {
  const byId = new Map(categories.map((category) => [category.id, category]));
  const category = byId.get(id);
  if (!category) return "";
  return [...category.path.map((ancestor) => byId.get(ancestor)?.name ?? "…"), category.name].join(" › ");
}

export function siblingsOf(categories: Category[], category: Category): Category[] {
  return categories.filter((other) => other.parent_id === category.parent_id).sort(bySiblingOrder);
}

/**
 * The position changes that move the category `by` places among its siblings (-1: up, 1: down),
 * numbering the siblings 0, 1, 2… so ties and gaps left by earlier edits disappear too.
 */
export function reorder(categories: Category[], category: Category, by: number): { id: string; position: number }[] {
  const siblings = siblingsOf(categories, category);
  const from = siblings.findIndex((sibling) => sibling.id === category.id);
  const to = from + by;
  if (from < 0 || to < 0 || to >= siblings.length) return [];
  const order = [...siblings];
  order.splice(from, 1);
  order.splice(to, 0, category);
  return order.flatMap((sibling, index) => (sibling.position === index ? [] : [{ id: sibling.id, position: index }]));
}
