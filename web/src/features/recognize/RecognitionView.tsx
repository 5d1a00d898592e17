// One recognition's answer: the photo, the confidence per label, why it is unknown if it is,
// similar catalog materials, feedback, and filing it in a project.
import { useMutation, useQueryClient } from "@tanstack/react-query";
import { useId, useState, type FormEvent } from "react";
import { useTranslation } from "react-i18next";
import { Link } from "react-router";

import { api } from "../../api/client";
import { unwrap } from "../../api/problem";
import { useCan } from "../../app/me";
import { ApiImage } from "../../components/ApiImage";
import { FormProblem, formErrors } from "../../components/Form";
import { useFormat } from "../../i18n/format";
import { useActiveProjects, useCategories, useRecognitionSettings, type Category, type Recognition } from "./api";
import { LookAlikeGrid, PredictionBars, UnknownExplanation, sortedPredictions } from "./RecognitionParts";

/** What the answer says, without the actions: the part that needs no other request. */
export function RecognitionSummary({ recognition, threshold }: { recognition: Recognition; threshold?: number | undefined }) {
  const { t } = useTranslation("recognize");
  const format = useFormat();
  const best = sortedPredictions(recognition.predictions)[0];
  return (
    <div className="recognition-summary">
      <figure className="recognition-photo">
        <ApiImage src={recognition.image_url} alt={t("photoAlt", { name: recognition.file_name })} />
      </figure>
      <div className="recognition-answer">
        {recognition.unknown ? (
          <p className="verdict is-unknown" aria-live="polite">
            <span className="badge bad">{t("unknownBadge")}</span>
          </p>
        ) : (
          best && (
            <p className="verdict" aria-live="polite">
              {t("bestGuess", { label: recognition.label ?? best.label })}
            </p>
          )
        )}
        <UnknownExplanation recognition={recognition} threshold={threshold} />
        <h2>{t("predictions")}</h2>
        <PredictionBars predictions={recognition.predictions} muted={recognition.unknown} />
        <p className="muted recognition-meta">
          {recognition.model_version && <span>{t("modelVersion", { number: recognition.model_version.number })}</span>}
          {recognition.timings.total !== undefined && <span>{t("took", { ms: format.number(recognition.timings.total, 0) })}</span>}
          <span>{t("madeAt", { date: format.dateTime(recognition.created_at) })}</span>
        </p>
      </div>
    </div>
  );
}

export function RecognitionView({ recognition }: { recognition: Recognition }) {
  const { t } = useTranslation("recognize");
  const canCreate = useCan("recognitions:create");
  const settings = useRecognitionSettings(recognition.unknown);
  return (
    <div className="stack recognition-view">
      <RecognitionSummary recognition={recognition} threshold={settings.data?.confidence_threshold} />
      <section aria-labelledby="similar-heading">
        <h2 id="similar-heading">{t("similar")}</h2>
        <LookAlikeGrid items={recognition.similar} empty={t("similarEmpty")} />
      </section>
      {canCreate && <Feedback recognition={recognition} />}
      {canCreate && <AddToProject recognition={recognition} />}
    </div>
  );
}

/** Categories in tree order, each indented by its depth. */
function categoryOptions(categories: readonly Category[]): { id: string; name: string }[] {
  return categories.map((category) => ({ id: category.id, name: `${"\u2003".repeat(category.path.length)}${category.name}` }));
}

// What a correction names: one of the catalog's materials (a model trained by material learns
// only from these) or a category; the choice's value says which.
type Correction = { correct: boolean; category_id?: string; material_id?: string };

function correctionOf(choice: string): Correction | null {
  const [kind, id] = choice.split(":", 2);
  if (!id) return null;
  return kind === "material" ? { correct: false, material_id: id } : { correct: false, category_id: id };
}

export function Feedback({ recognition }: { recognition: Recognition }) {
  const { t } = useTranslation("recognize");
  const client = useQueryClient();
  const selectId = useId();
  const [correcting, setCorrecting] = useState(recognition.unknown);
  const [choice, setChoice] = useState("");
  const categories = useCategories(correcting);
  const [said, setSaid] = useState<string | null>(null);
  const send = useMutation({
    mutationFn: async (body: Correction) =>
      unwrap(
        await api.POST("/api/v1/recognitions/{recognition_id}/feedback", {
          params: { path: { recognition_id: recognition.id } },
          body: { ...body, comment: "" },
        }),
      ),
    onSuccess: (_, body) => {
      const name = body.material_id
        ? recognition.similar.find((item) => item.material_id === body.material_id)?.name
        : categories.data?.find((category) => category.id === body.category_id)?.name;
      setSaid(body.correct ? t("thanksRight") : t("thanksCorrected", { label: name ?? "" }));
      void client.invalidateQueries({ queryKey: ["recognitions", "list"] });
    },
  });
  const { fields, message } = formErrors(send.error);
  const fieldError = fields.material_id ?? fields.category_id;

  function correct(event: FormEvent) {
    event.preventDefault();
    const body = correctionOf(choice);
    if (body) send.mutate(body);
  }

  return (
    <section className="card feedback" aria-labelledby="feedback-heading">
      <h2 id="feedback-heading">{t("feedback")}</h2>
      <div aria-live="polite">{said && <p className="feedback-thanks" role="status">{said}</p>}</div>
      {!said && (
        <>
          <div className="row">
            {!recognition.unknown && (
              <button type="button" className="primary" disabled={send.isPending} onClick={() => send.mutate({ correct: true })}>
                {t("thisIsRight")}
              </button>
            )}
            {!correcting && (
              <button type="button" onClick={() => setCorrecting(true)} aria-expanded={false}>
                {t("actually")}
              </button>
            )}
          </div>
          {correcting && (
            <form className="row correction" onSubmit={correct}>
              <div className={`field grow${fieldError ? " field-invalid" : ""}`}>
                <label htmlFor={selectId}>{t("actuallyLabel")}</label>
                <select id={selectId} value={choice} required onChange={(event) => setChoice(event.target.value)}>
                  <option value="">{categories.isPending ? t("common:loading") : t("chooseWhat")}</option>
                  {recognition.similar.length > 0 && (
                    <optgroup label={t("similarMaterials")}>
                      {recognition.similar.map((item) => (
                        <option key={item.material_id} value={`material:${item.material_id}`}>
                          {item.code ? `${item.name} (${item.code})` : item.name}
                        </option>
                      ))}
                    </optgroup>
                  )}
                  <optgroup label={t("categoriesGroup")}>
                    {categoryOptions(categories.data ?? []).map((option) => (
                      <option key={option.id} value={`category:${option.id}`}>
                        {option.name}
                      </option>
                    ))}
                  </optgroup>
                </select>
                {fieldError && <small className="field-error">{fieldError}</small>}
              </div>
              <button type="submit" disabled={!choice || send.isPending}>
                {t("sendCorrection")}
              </button>
            </form>
          )}
          {categories.error ? <FormProblem message={formErrors(categories.error).message} /> : null}
          <FormProblem message={message} />
        </>
      )}
    </section>
  );
}

function AddToProject({ recognition }: { recognition: Recognition }) {
  const { t } = useTranslation("recognize");
  const client = useQueryClient();
  const selectId = useId();
  const projects = useActiveProjects();
  const [projectId, setProjectId] = useState("");
  const [filed, setFiled] = useState<string | null>(null);
  const add = useMutation({
    mutationFn: async (id: string) => {
      unwrap(
        await api.PUT("/api/v1/projects/{project_id}/recognitions/{recognition_id}", {
          params: { path: { project_id: id, recognition_id: recognition.id } },
        }),
      );
      return id;
    },
    onSuccess: (id) => {
      setFiled(projects.data?.items.find((project) => project.id === id)?.name ?? "");
      void client.invalidateQueries({ queryKey: ["recognitions", recognition.id] });
      void client.invalidateQueries({ queryKey: ["projects"] });
    },
  });
  const { message } = formErrors(add.error ?? projects.error);
  const items = projects.data?.items ?? [];
  const current = recognition.project_id;
  const currentName = items.find((project) => project.id === current)?.name;

  return (
    <section className="card add-to-project" aria-labelledby="project-heading">
      <h2 id="project-heading">{t("addToProject")}</h2>
      <div aria-live="polite">
        {filed !== null ? (
          <p role="status">{t("addedToProject", { name: filed })}</p>
        ) : (
          current && <p>{currentName ? t("addedToProject", { name: currentName }) : t("inProject")}</p>
        )}
      </div>
      {current && (
        <p>
          <Link to={`/projects/${current}`}>{t("openProject")}</Link>
        </p>
      )}
      {projects.isSuccess && items.length === 0 ? (
        <p className="muted">{t("noProjects")}</p>
      ) : (
        <form
          className="row"
          onSubmit={(event) => {
            event.preventDefault();
            if (projectId) add.mutate(projectId);
          }}
        >
          <div className="field grow">
            <label htmlFor={selectId}>{t("project")}</label>
            <select id={selectId} value={projectId} onChange={(event) => setProjectId(event.target.value)}>
              <option value="">{projects.isPending ? t("common:loading") : t("chooseProject")}</option>
              {items.map((project) => (
                <option key={project.id} value={project.id}>
                  {project.client ? `${project.name} (${project.client})` : project.name}
                </option>
              ))}
            </select>
          </div>
          <button type="submit" disabled={!projectId || add.isPending}>
            {t("add")}
          </button>
        </form>
      )}
      <FormProblem message={message} />
    </section>
  );
}
