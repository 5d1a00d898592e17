// The catalog's own addresses, under /catalog.
import { Route, Routes } from "react-router";

import { NotFoundPage } from "../../app/NotFoundPage";
import CatalogPage from "./CatalogPage";
import MaterialPage from "./MaterialPage";
import NewMaterialPage from "./NewMaterialPage";

export default function CatalogRoutes() {
  return (
    <Routes>
      <Route index element={<CatalogPage />} />
      <Route path="materials/new" element={<NewMaterialPage />} />
      <Route path="materials/:materialId" element={<MaterialPage />} />
      <Route path="*" element={<NotFoundPage />} />
    </Routes>
  );
}
