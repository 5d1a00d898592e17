import { buildTree, flatten, pathName, reorder, subtreeIds, type Category } from "./tree";

function category(id: string, parent: Category | null, position: number): Category {
  return {
    id,
    name: id,
    parent_id: parent?.id ?? null,
    path: parent ? [...parent.path, parent.id] : [],
    position,
    description: "",
    properties: [],
    effective_properties: [],
    created_at: "2026-01-01T00:00:00Z",
    updated_at: "2026-01-01T00:00:00Z",
  };
}

const stone = category("Stone", null, 0);
const wood = category("Wood", null, 1);
const marble = category("Marble", stone, 1);
const granite = category("Granite", stone, 1);
const carrara = category("Carrara", marble, 0);
const all = [carrara, wood, marble, granite, stone];

describe("the category tree", () => {
  it("lists parents before their children, siblings by position then name", () => {
    expect(flatten(buildTree(all)).map((node) => `${node.depth}:${node.category.name}`)).toEqual([
      "0:Stone",
      "1:Granite",
      "1:Marble",
      "2:Carrara",
      "0:Wood",
    ]);
  });

  it("names a category by its path and keeps it from moving under itself", () => {
    expect(pathName(all, carrara.id)).toBe("Stone › Marble › Carrara");
    expect(subtreeIds(all, marble.id)).toEqual(new Set(["Marble", "Carrara"]));
  });

  it("renumbers the siblings to move one up or down", () => {
    // Granite and Marble share position 1: moving Marble up numbers them 0, 1 (Granite has
    // its number already).
    expect(reorder(all, marble, -1)).toEqual([{ id: "Marble", position: 0 }]);
    expect(reorder(all, granite, -1)).toEqual([]);
    expect(reorder(all, wood, 1)).toEqual([]);
    expect(reorder(all, stone, 1)).toEqual([
      { id: "Wood", position: 0 },
      { id: "Stone", position: 1 },
    ]);
  });
});
