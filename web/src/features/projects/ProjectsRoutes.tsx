// /projects: the list, and each project with its materials and recognitions.
import { Route, Routes } from "react-router";

import { NotFoundPage } from "../../app/NotFoundPage";
import { ProjectListPage } from "./ProjectListPage";
import { ProjectPage } from "./ProjectPage";
import "./projects.css";

export default function ProjectsRoutes() {
  return (
    <Routes>
      <Route index element={<ProjectListPage />} />
      <Route path=":projectId" element={<ProjectPage />} />
      <Route path="*" element={<NotFoundPage />} />
    </Routes>
  );
}
