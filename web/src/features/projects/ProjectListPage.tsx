// /projects: the projects a person can see, active or archived, and a new one.
import { useState } from "react";
import { useTranslation } from "react-i18next";
import { Link, useNavigate } from "react-router";

import { api } from "../../api/client";
import { unwrap } from "../../api/problem";
import { useCan } from "../../app/me";
import { Dialog } from "../../components/Dialog";
import { useLoadMoreOnView } from "../../components/lists";
import { Empty, ErrorState, Loading } from "../../components/States";
import { useFormat } from "../../i18n/format";
import { useProjectMutation, useProjects, type Project, type ProjectStatus } from "./api";
import { ProjectForm, type ProjectFields } from "./ProjectForm";
import { Totals } from "./Totals";
import { useDebounced } from "./useDebounced";

const EMPTY_PROJECT: ProjectFields = { name: "", client: "", description: "", team_ids: [] };

export function ProjectListPage() {
  const { t } = useTranslation("projects");
  const canManage = useCan("projects:manage");
  const navigate = useNavigate();
  const [status, setStatus] = useState<ProjectStatus>("active");
  const [search, setSearch] = useState("");
  const [creating, setCreating] = useState(false);
  const projects = useProjects(status, useDebounced(search.trim()));
  const loadMoreRef = useLoadMoreOnView(Boolean(projects.hasNextPage), () => void projects.fetchNextPage());
  const create = useProjectMutation(async (fields: ProjectFields) =>
    unwrap(await api.POST("/api/v1/projects", { body: fields })),
  );

  const newButton = canManage && (
    <button type="button" className="primary" onClick={() => setCreating(true)}>
      {t("newProject")}
    </button>
  );

  return (
    <section className="projects">
      <header className="page-header">
        <h1>{t("title")}</h1>
        {newButton}
      </header>
      <div className="row projects-filters">
        <div role="group" aria-label={t("showStatus")} className="segmented">
          {(["active", "archived"] as const).map((value) => (
            <button key={value} type="button" aria-pressed={status === value} onClick={() => setStatus(value)}>
              {t(`status.${value}`)}
            </button>
          ))}
        </div>
        <label className="projects-search">
          <span className="visually-hidden">{t("searchProjects")}</span>
          <input
            type="search"
            placeholder={t("searchProjects")}
            value={search}
            onChange={(event) => setSearch(event.target.value)}
          />
        </label>
      </div>

      {projects.isPending ? (
        <Loading />
      ) : projects.error ? (
        <ErrorState error={projects.error} onRetry={() => void projects.refetch()} />
      ) : projects.items.length === 0 ? (
        search.trim() ? (
          <Empty>{t("noMatches")}</Empty>
        ) : status === "archived" ? (
          <Empty>{t("noArchived")}</Empty>
        ) : (
          <Empty action={newButton || undefined}>{canManage ? t("emptyInvite") : t("empty")}</Empty>
        )
      ) : (
        <ul className="project-list" aria-label={t(`status.${status}`)}>
          {projects.items.map((project) => (
            <ProjectItem key={project.id} project={project} />
          ))}
        </ul>
      )}
      {projects.hasNextPage && (
        <div ref={loadMoreRef}>
          <button type="button" onClick={() => void projects.fetchNextPage()} disabled={projects.isFetchingNextPage}>
            {t("common:loadMore")}
          </button>
        </div>
      )}

      <Dialog open={creating} title={t("newProject")} onClose={() => setCreating(false)}>
        <ProjectForm
          initial={EMPTY_PROJECT}
          submitLabel={t("common:create")}
          pending={create.isPending}
          error={create.error}
          withTeams
          onCancel={() => setCreating(false)}
          onSubmit={(fields) =>
            create.mutate(fields, {
              onSuccess: (project) => {
                setCreating(false);
                navigate(project.id);
              },
            })
          }
        />
      </Dialog>
    </section>
  );
}

function ProjectItem({ project }: { project: Project }) {
  const { t } = useTranslation("projects");
  const format = useFormat();
  return (
    <li className="card project-item">
      <h2>
        <Link to={project.id}>{project.name}</Link>
      </h2>
      {project.client && <p className="muted">{project.client}</p>}
      <p className="row project-counts">
        <span>{t("materialCount", { count: project.material_count })}</span>
        <span>{t("recognitionCount", { count: project.recognition_count })}</span>
        {project.status === "archived" && <span className="badge">{t("status.archived")}</span>}
      </p>
      <Totals project={project} compact />
      <p className="muted small">{t("updated", { date: format.date(project.updated_at) })}</p>
    </li>
  );
}
