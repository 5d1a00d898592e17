// Every feature's string table, by namespace. A new feature adds one line here.
import type { StringTable } from "./index";
import { strings as account } from "../features/account/strings";
import { strings as admin } from "../features/admin/strings";
import { strings as auth } from "../features/auth/strings";
import { strings as models } from "../features/models/strings";
import { strings as projects } from "../features/projects/strings";
import { strings as recognize } from "../features/recognize/strings";
import { strings as catalogAdmin } from "../features/catalog-admin/strings";
import { strings as catalog } from "../features/catalog/strings";

export const registry: Record<string, StringTable> = {
  account,
  admin,
  auth,
  models,
  projects,
  recognize,
  catalogAdmin,
  catalog,
};
