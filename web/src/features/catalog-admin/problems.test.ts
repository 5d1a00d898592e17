import { ApiError } from "../../api/problem";
import { categoryBlockers } from "./problems";

function inUse(detail: string): ApiError {
  return new ApiError({ type: "https://kai.dev/problems/category-in-use", title: "In use", status: 409, detail });
}

describe("what keeps a category from being deleted", () => {
  it("reads the subcategories, live and deleted materials from the problem", () => {
    expect(categoryBlockers(inUse("Move or delete its subcategories first."))).toEqual({ subcategories: true, live: 0, deleted: 0 });
    expect(
      categoryBlockers(
        inUse(
          "3 material(s) are filed under it: move them first; 2 deleted material(s) are filed under it: purge them " +
            "(`?purge_deleted_materials=true`, or `POST /api/v1/materials/{id}/purge`), or move them.",
        ),
      ),
    ).toEqual({ subcategories: false, live: 3, deleted: 2 });
  });

  it("leaves other errors alone", () => {
    expect(categoryBlockers(new ApiError({ type: "about:blank", title: "Gone", status: 404 }))).toBeNull();
    expect(categoryBlockers(new TypeError("offline"))).toBeNull();
  });
});
