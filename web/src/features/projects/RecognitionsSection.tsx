// The recognitions filed in a project: their photos, each opening its recognition.
import { useTranslation } from "react-i18next";
import { Link } from "react-router";

import { api } from "../../api/client";
import { describe, unwrap } from "../../api/problem";
import { ApiImage } from "../../components/ApiImage";
import { FormProblem } from "../../components/Form";
import { Empty, ErrorState, Loading } from "../../components/States";
import { useFormat } from "../../i18n/format";
import { useProjectMutation, useProjectRecognitions, type Project, type Recognition } from "./api";

export function RecognitionsSection({ project, editable }: { project: Project; editable: boolean }) {
  const { t } = useTranslation("projects");
  const recognitions = useProjectRecognitions(project.id);
  return (
    <section className="project-recognitions" aria-labelledby="project-recognitions-title">
      <h2 id="project-recognitions-title">{t("recognitions")}</h2>
      {recognitions.isPending ? (
        <Loading />
      ) : recognitions.error ? (
        <ErrorState error={recognitions.error} onRetry={() => void recognitions.refetch()} />
      ) : recognitions.items.length === 0 ? (
        <Empty>{t("noRecognitions")}</Empty>
      ) : (
        <ul className="grid recognition-grid">
          {recognitions.items.map((recognition) => (
            <RecognitionTile key={recognition.id} project={project} recognition={recognition} editable={editable} />
          ))}
        </ul>
      )}
      {recognitions.hasNextPage && (
        <button type="button" onClick={() => void recognitions.fetchNextPage()} disabled={recognitions.isFetchingNextPage}>
          {t("common:loadMore")}
        </button>
      )}
    </section>
  );
}

function RecognitionTile({ project, recognition, editable }: { project: Project; recognition: Recognition; editable: boolean }) {
  const { t } = useTranslation("projects");
  const format = useFormat();
  const label = recognition.unknown || !recognition.label ? t("unknownMaterial") : recognition.label;
  const unfile = useProjectMutation(async () =>
    unwrap(
      await api.DELETE("/api/v1/projects/{project_id}/recognitions/{recognition_id}", {
        params: { path: { project_id: project.id, recognition_id: recognition.id } },
      }),
    ),
  );
  return (
    <li className="tile">
      <Link to={`/recognize/${recognition.id}`} className="recognition-link">
        <span className="thumb">
          <ApiImage src={recognition.image_url} alt={recognition.file_name} />
        </span>
        <span className="tile-body">
          <strong>{label}</strong>
          {recognition.confidence !== null && !recognition.unknown && (
            <span className="muted small"> {format.confidence(recognition.confidence)}</span>
          )}
          <br />
          <span className="muted small">{format.dateTime(recognition.created_at)}</span>
        </span>
      </Link>
      {editable && (
        <div className="tile-actions">
          <button
            type="button"
            className="link-button"
            disabled={unfile.isPending}
            aria-label={t("unfileNamed", { name: recognition.file_name })}
            onClick={() => unfile.mutate(undefined)}
          >
            {t("unfile")}
          </button>
          {unfile.error ? <FormProblem message={describe(unfile.error)} /> : null}
        </div>
      )}
    </li>
  );
}
