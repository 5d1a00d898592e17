// /projects/:projectId: a project, the materials chosen for it and the recognitions filed in it.
import { useMutation, useQueryClient } from "@tanstack/react-query";
import { useState } from "react";
import { useTranslation } from "react-i18next";
import { Link, useNavigate, useParams } from "react-router";

import { api, type Schemas } from "../../api/client";
import { describe, unwrap } from "../../api/problem";
import { useCan } from "../../app/me";
import { ConfirmDialog, Dialog } from "../../components/Dialog";
import { FormProblem, formErrors } from "../../components/Form";
import { QueryState } from "../../components/States";
import { useFormat } from "../../i18n/format";
import { downloadExport, keys, useProject, useProjectMutation, type Project } from "./api";
import { MaterialsSection } from "./MaterialsSection";
import { ProjectForm } from "./ProjectForm";
import { RecognitionsSection } from "./RecognitionsSection";
import { SharedWith, TeamChoice } from "./TeamChoice";
import { Totals } from "./Totals";

export function ProjectPage() {
  const { projectId = "" } = useParams();
  const project = useProject(projectId);
  return <QueryState query={project}>{(data) => <ProjectView project={data} />}</QueryState>;
}

type Open = "edit" | "share" | "delete" | null;

function ProjectView({ project }: { project: Project }) {
  const { t } = useTranslation("projects");
  const format = useFormat();
  const canManage = useCan("projects:manage");
  const navigate = useNavigate();
  const [open, setOpenState] = useState<Open>(null);
  const [exportError, setExportError] = useState<unknown>(null);
  const [exporting, setExporting] = useState(false);
  const path = { project_id: project.id };
  const update = useProjectMutation(async (body: Schemas["ProjectUpdate"]) =>
    unwrap(await api.PATCH("/api/v1/projects/{project_id}", { params: { path }, body })),
  );
  const client = useQueryClient();
  const remove = useMutation({
    mutationFn: async () => unwrap(await api.DELETE("/api/v1/projects/{project_id}", { params: { path } })),
    // Away first: asking again for the project just deleted would only show an error.
    onSuccess: () => {
      navigate("/projects", { replace: true });
      client.removeQueries({ queryKey: keys.one(project.id) });
      void client.invalidateQueries({ queryKey: ["projects", "list"] });
    },
  });
  const archived = project.status === "archived";
  const setOpen = (next: Open) => {
    // A dialog opens without the problem of an earlier attempt.
    update.reset();
    remove.reset();
    setOpenState(next);
  };
  // A dialog closes itself only: by the time a save is done, or the dialog told it was
  // closed (opening another closes it), another may be open.
  const closeIf = (which: Open) => setOpenState((current) => (current === which ? null : current));

  const exportAs = async (kind: "csv" | "json") => {
    setExportError(null);
    setExporting(true);
    try {
      await downloadExport(project, kind);
    } catch (error) {
      setExportError(error);
    } finally {
      setExporting(false);
    }
  };

  return (
    <article className="project">
      <p className="breadcrumb">
        <Link to="/projects">{t("title")}</Link>
      </p>
      <header className="page-header">
        <h1>{project.name}</h1>
        {archived && <span className="badge">{t("status.archived")}</span>}
      </header>
      <div className="project-about">
        {project.client && (
          <p>
            <span className="muted">{t("client")}: </span>
            {project.client}
          </p>
        )}
        {project.description && <p className="project-description">{project.description}</p>}
        <p className="muted">
          <SharedWith teamIds={project.team_ids} /> · {t("created", { date: format.date(project.created_at) })}
        </p>
      </div>

      <div className="row project-actions">
        {canManage && (
          <>
            <button type="button" onClick={() => setOpen("edit")}>
              {t("edit")}
            </button>
            <button type="button" onClick={() => setOpen("share")}>
              {t("share")}
            </button>
            <button
              type="button"
              disabled={update.isPending}
              onClick={() => update.mutate({ status: archived ? "active" : "archived" })}
            >
              {archived ? t("reopen") : t("archive")}
            </button>
          </>
        )}
        <button type="button" onClick={() => void exportAs("csv")} disabled={exporting}>
          {t("exportCsv")}
        </button>
        <button type="button" onClick={() => void exportAs("json")} disabled={exporting}>
          {t("exportJson")}
        </button>
        {canManage && (
          <button type="button" className="danger" onClick={() => setOpen("delete")}>
            {t("deleteProject")}
          </button>
        )}
      </div>
      {open === null && update.error ? <FormProblem message={describe(update.error)} /> : null}
      {exportError ? <FormProblem message={describe(exportError)} /> : null}
      {archived && <p className="muted">{t("archivedNote")}</p>}

      <Totals project={project} />
      <MaterialsSection project={project} editable={canManage && !archived} />
      <RecognitionsSection project={project} editable={canManage} />

      <Dialog open={open === "edit"} title={t("editProject")} onClose={() => closeIf("edit")}>
        <ProjectForm
          initial={{ name: project.name, client: project.client, description: project.description, team_ids: project.team_ids }}
          submitLabel={t("common:save")}
          pending={update.isPending}
          error={update.error}
          withTeams={false}
          onCancel={() => setOpen(null)}
          onSubmit={({ name, client, description }) =>
            update.mutate({ name, client, description }, { onSuccess: () => closeIf("edit") })
          }
        />
      </Dialog>
      <Dialog open={open === "share"} title={t("shareProject")} onClose={() => closeIf("share")}>
        <ShareForm
          project={project}
          pending={update.isPending}
          error={update.error}
          onCancel={() => setOpen(null)}
          onSubmit={(team_ids) => update.mutate({ team_ids }, { onSuccess: () => closeIf("share") })}
        />
      </Dialog>
      <ConfirmDialog
        open={open === "delete"}
        title={t("deleteProject")}
        confirmLabel={t("deleteForGood")}
        pending={remove.isPending}
        error={remove.error}
        onConfirm={() => remove.mutate()}
        onClose={() => closeIf("delete")}
      >
        <p>{t("deleteConfirm", { name: project.name })}</p>
      </ConfirmDialog>
    </article>
  );
}

function ShareForm({
  project,
  pending,
  error,
  onSubmit,
  onCancel,
}: {
  project: Project;
  pending: boolean;
  error: unknown;
  onSubmit: (teamIds: string[]) => void;
  onCancel: () => void;
}) {
  const { t } = useTranslation("projects");
  const [teamIds, setTeamIds] = useState(project.team_ids);
  return (
    <form
      onSubmit={(event) => {
        event.preventDefault();
        onSubmit(teamIds);
      }}
    >
      <TeamChoice value={teamIds} onChange={setTeamIds} />
      <FormProblem message={formErrors(error).message} />
      <div className="row form-actions">
        <button type="submit" className="primary" disabled={pending}>
          {t("common:save")}
        </button>
        <button type="button" onClick={onCancel}>
          {t("common:cancel")}
        </button>
      </div>
    </form>
  );
}
