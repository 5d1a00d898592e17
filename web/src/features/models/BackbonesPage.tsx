// The image models a training may use: built in, and the ONNX files the organization uploaded.
import { useMutation, useQueryClient } from "@tanstack/react-query";
import { useId, useRef, useState, type FormEvent } from "react";
import { useTranslation } from "react-i18next";

import { useCan } from "../../app/me";
import { ConfirmDialog } from "../../components/Dialog";
import { Field, FormProblem, SelectField, formErrors } from "../../components/Form";
import { QueryState } from "../../components/States";
import { useFormat } from "../../i18n/format";
import { deleteBackbone, keys, uploadBackbone, useBackbones, type Backbone } from "./api";
import { kindKey } from "./TrainForm";

export function BackbonesPage() {
  const { t } = useTranslation("models");
  const format = useFormat();
  const canDeploy = useCan("models:deploy");
  const backbones = useBackbones();
  const [deleting, setDeleting] = useState<Backbone | null>(null);
  return (
    <section>
      <header className="page-header">
        <h1>{t("backbonesTitle")}</h1>
      </header>
      <p className="muted">{t("backbonesIntro")}</p>
      <QueryState query={{ ...backbones, data: backbones.data ? backbones.items : undefined }} isEmpty={(items) => items.length === 0} empty={t("noBackbones")}>
        {(items) => (
          <div className="table-wrap">
            <table>
              <caption className="visually-hidden">{t("backbonesTitle")}</caption>
              <thead>
                <tr>
                  <th scope="col">{t("backbone")}</th>
                  <th scope="col">{t("kind")}</th>
                  <th scope="col">{t("inputSide")}</th>
                  <th scope="col">{t("dimension")}</th>
                  <th scope="col">{t("sha256")}</th>
                  <th scope="col">{t("uploadedAt")}</th>
                  {canDeploy && <th scope="col">{t("actions")}</th>}
                </tr>
              </thead>
              <tbody>
                {items.map((backbone) => (
                  <tr key={backbone.name}>
                    <th scope="row">{backbone.name}</th>
                    <td>{t(kindKey(backbone.kind))}</td>
                    <td>{t("pixels", { side: backbone.input_side })}</td>
                    <td>{backbone.dimension == null ? "—" : format.number(backbone.dimension, 0)}</td>
                    <td>{backbone.sha256 ? <code className="hash" title={backbone.sha256}>{backbone.sha256.slice(0, 12)}</code> : "—"}</td>
                    <td>{backbone.created_at ? format.dateTime(backbone.created_at) : "—"}</td>
                    {canDeploy && (
                      <td>
                        {backbone.kind !== "built-in" && (
                          <button type="button" className="danger" onClick={() => setDeleting(backbone)} aria-label={t("deleteBackbone", { name: backbone.name })}>
                            {t("common:delete")}
                          </button>
                        )}
                      </td>
                    )}
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )}
      </QueryState>
      {backbones.hasNextPage && (
        <button type="button" className="wide" onClick={() => void backbones.fetchNextPage()}>
          {t("common:loadMore")}
        </button>
      )}
      {canDeploy && <UploadForm />}
      <DeleteDialog backbone={deleting} onClose={() => setDeleting(null)} />
    </section>
  );
}

function UploadForm() {
  const { t } = useTranslation("models");
  const client = useQueryClient();
  const fileId = useId();
  const fileRef = useRef<HTMLInputElement>(null);
  const [name, setName] = useState("");
  const [side, setSide] = useState("224");
  const [mean, setMean] = useState("0.485,0.456,0.406");
  const [std, setStd] = useState("0.229,0.224,0.225");
  const [scale, setScale] = useState(String(1 / 255));
  const [layout, setLayout] = useState<"nchw" | "nhwc">("nchw");
  const [input, setInput] = useState("");
  const [output, setOutput] = useState("");
  const [noFile, setNoFile] = useState(false);
  const [uploaded, setUploaded] = useState<string | null>(null);
  const upload = useMutation({
    mutationFn: uploadBackbone,
    onSuccess: async (backbone) => {
      setUploaded(backbone.name);
      setName("");
      if (fileRef.current) fileRef.current.value = "";
      await client.invalidateQueries({ queryKey: keys.backbones });
    },
  });
  const { fields, message } = formErrors(upload.error);

  const submit = (event: FormEvent) => {
    event.preventDefault();
    setUploaded(null);
    const file = fileRef.current?.files?.[0];
    setNoFile(!file);
    if (!file) return;
    const form = new FormData();
    form.set("file", file);
    form.set("name", name.trim());
    form.set("input_side", side.trim());
    form.set("mean", mean);
    form.set("std", std);
    form.set("scale", scale.trim());
    form.set("layout", layout);
    if (input.trim()) form.set("input", input.trim());
    if (output.trim()) form.set("output", output.trim());
    upload.mutate(form);
  };

  const fileError = noFile ? t("chooseFile") : fields.file;
  return (
    <section aria-labelledby="upload-heading" className="card upload-backbone">
      <h2 id="upload-heading">{t("uploadTitle")}</h2>
      <p className="muted">{t("uploadIntro")}</p>
      <form onSubmit={submit} noValidate>
        <div className={`field${fileError ? " field-invalid" : ""}`}>
          <label htmlFor={fileId}>{t("onnxFile")}</label>
          <input
            id={fileId}
            ref={fileRef}
            type="file"
            accept=".onnx,application/octet-stream"
            aria-invalid={fileError ? true : undefined}
            aria-describedby={fileError ? `${fileId}-error` : undefined}
          />
          {fileError && (
            <small id={`${fileId}-error`} className="field-error">
              {fileError}
            </small>
          )}
        </div>
        <Field label={t("backboneName")} hint={t("backboneNameHint")} value={name} onChange={(event) => setName(event.target.value)} error={fields.name} autoComplete="off" />
        <Field label={t("inputSideLabel")} hint={t("inputSideHint")} type="number" inputMode="numeric" value={side} onChange={(event) => setSide(event.target.value)} error={fields.input_side} />
        <details className="advanced">
          <summary>{t("advanced")}</summary>
          <Field label={t("mean")} value={mean} onChange={(event) => setMean(event.target.value)} error={fields.mean} />
          <Field label={t("std")} value={std} onChange={(event) => setStd(event.target.value)} error={fields.std} />
          <Field label={t("scale")} hint={t("scaleHint")} value={scale} onChange={(event) => setScale(event.target.value)} error={fields.scale} />
          <SelectField label={t("layout")} value={layout} error={fields.layout} onChange={(event) => setLayout(event.target.value as "nchw" | "nhwc")}>
            <option value="nchw">NCHW</option>
            <option value="nhwc">NHWC</option>
          </SelectField>
          <Field label={t("inputName")} value={input} onChange={(event) => setInput(event.target.value)} error={fields.input} />
          <Field label={t("outputName")} value={output} onChange={(event) => setOutput(event.target.value)} error={fields.output} />
        </details>
        <FormProblem message={message} />
        <div className="row">
          <button type="submit" className="primary" disabled={upload.isPending}>
            {upload.isPending ? t("checking") : t("upload")}
          </button>
          <span role="status" aria-live="polite" className="muted">
            {uploaded ? t("uploadedDone", { name: uploaded }) : ""}
          </span>
        </div>
      </form>
    </section>
  );
}

function DeleteDialog({ backbone, onClose }: { backbone: Backbone | null; onClose: () => void }) {
  const { t } = useTranslation("models");
  const client = useQueryClient();
  const remove = useMutation({
    mutationFn: deleteBackbone,
    onSuccess: async () => {
      await client.invalidateQueries({ queryKey: keys.backbones });
      onClose();
    },
  });
  const close = () => {
    remove.reset();
    onClose();
  };
  return (
    <ConfirmDialog
      open={backbone !== null}
      title={t("deleteTitle")}
      confirmLabel={t("common:delete")}
      pending={remove.isPending}
      error={remove.error}
      onConfirm={() => backbone && remove.mutate(backbone.name)}
      onClose={close}
    >
      {backbone && <p>{t("deleteText", { name: backbone.name })}</p>}
    </ConfirmDialog>
  );
}
