// The signed-in screens of each feature, each loaded when first opened. A feature adds its
// entry here and keeps everything else in features/<domain>/.
import type { RouteObject } from "react-router";

export const featureRoutes: RouteObject[] = [
  { path: "account/*", lazy: async () => ({ Component: (await import("../features/account/AccountRoutes")).default }) },
  { path: "models/*", lazy: async () => ({ Component: (await import("../features/models/ModelsRoutes")).default }) },
  { path: "projects/*", lazy: async () => ({ Component: (await import("../features/projects/ProjectsRoutes")).default }) },
  {
    path: "recognize/*",
    lazy: async () => ({ Component: (await import("../features/recognize/RecognizeRoutes")).default }),
  },
  // The catalog's management screens (static paths, so they win over a `catalog/*` splat).
  ...(
    [
      ["catalog/categories", () => import("../features/catalog-admin/CategoriesPage")],
      ["catalog/import", () => import("../features/catalog-admin/ImportPage")],
      ["catalog/export", () => import("../features/catalog-admin/ExportPage")],
      ["catalog/trash", () => import("../features/catalog-admin/TrashPage")],
      ["catalog/duplicates", () => import("../features/catalog-admin/DuplicatesPage")],
      ["catalog/settings", () => import("../features/catalog-admin/SettingsPage")],
    ] as const
  ).map(([path, load]) => ({ path, lazy: async () => ({ Component: (await load()).default }) })),
  { path: "catalog/*", lazy: async () => ({ Component: (await import("../features/catalog/CatalogRoutes")).default }) },
  { path: "admin/*", lazy: async () => ({ Component: (await import("../features/admin/AdminRoutes")).default }) },
];
