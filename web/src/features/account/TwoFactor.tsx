// Two-factor authentication: its status, enrolment with a QR code, recovery codes, turning off.
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import QRCode from "qrcode";
import { useEffect, useState, type FormEvent } from "react";
import { useTranslation } from "react-i18next";

import { api, type Schemas } from "../../api/client";
import { unwrap } from "../../api/problem";
import { CopyButton } from "../../components/CopyButton";
import { Dialog } from "../../components/Dialog";
import { Field, FormProblem, formErrors } from "../../components/Form";
import { QueryState } from "../../components/States";
import type { RunWithStepUp } from "./SecurityPage";

const MFA_KEY = ["account", "mfa"] as const;

export function TwoFactor({ run }: { run: RunWithStepUp }) {
  const { t } = useTranslation("account");
  const client = useQueryClient();
  const status = useQuery({
    queryKey: MFA_KEY,
    queryFn: async () => unwrap(await api.GET("/api/v1/auth/mfa")),
  });
  const [enrolment, setEnrolment] = useState<Schemas["TotpEnrolment"] | null>(null);
  const [codes, setCodes] = useState<string[] | null>(null);
  const [reauth, setReauth] = useState<"disable" | "regenerate" | null>(null);
  const enrol = useMutation({
    mutationFn: () => run(async () => unwrap(await api.POST("/api/v1/auth/mfa/totp/enrol"))),
    onSuccess: setEnrolment,
  });
  const enrolProblem = formErrors(enrol.error).message;

  function refresh() {
    void client.invalidateQueries({ queryKey: MFA_KEY });
    void client.invalidateQueries({ queryKey: ["me"] });
  }

  return (
    <section className="card" aria-labelledby="mfa-title">
      <h2 id="mfa-title">{t("mfa.title")}</h2>
      <QueryState query={status}>
        {(data) => {
          if (codes) {
            return (
              <RecoveryCodes
                codes={codes}
                onDone={() => {
                  setCodes(null);
                  refresh();
                }}
              />
            );
          }
          if (enrolment) {
            return (
              <Enrolment
                enrolment={enrolment}
                run={run}
                onCancel={() => setEnrolment(null)}
                onConfirmed={(recovery) => {
                  setEnrolment(null);
                  setCodes(recovery);
                  refresh();
                }}
              />
            );
          }
          return (
            <div className="stack">
              <p>
                {t("mfa.status")}:{" "}
                <span className={`badge ${data.totp_enabled ? "good" : "bad"}`}>
                  {data.totp_enabled ? t("mfa.on") : t("mfa.off")}
                </span>
              </p>
              {data.required_by_organization && <p>{t("mfa.required")}</p>}
              {data.totp_enabled ? (
                <>
                  <p>{t("mfa.codesLeft", { count: data.recovery_codes_left })}</p>
                  <div className="row">
                    <button type="button" onClick={() => setReauth("regenerate")}>
                      {t("mfa.regenerate")}
                    </button>
                    <button type="button" className="danger" onClick={() => setReauth("disable")}>
                      {t("mfa.disable")}
                    </button>
                  </div>
                </>
              ) : (
                <>
                  <p>{t("mfa.explain")}</p>
                  <FormProblem message={enrolProblem} />
                  <div>
                    <button type="button" className="primary" onClick={() => enrol.mutate()} disabled={enrol.isPending}>
                      {t("mfa.enable")}
                    </button>
                  </div>
                </>
              )}
            </div>
          );
        }}
      </QueryState>
      <Dialog
        open={reauth !== null}
        title={reauth === "disable" ? t("mfa.disableTitle") : t("mfa.regenerateTitle")}
        onClose={() => setReauth(null)}
      >
        {reauth && (
          <Reauthenticate
            purpose={reauth}
            onDone={(recovery) => {
              setReauth(null);
              if (recovery) setCodes(recovery);
              refresh();
            }}
          />
        )}
      </Dialog>
    </section>
  );
}

function Enrolment({
  enrolment,
  run,
  onConfirmed,
  onCancel,
}: {
  enrolment: Schemas["TotpEnrolment"];
  run: RunWithStepUp;
  onCancel: () => void;
  onConfirmed: (codes: string[]) => void;
}) {
  const { t } = useTranslation("account");
  const [qr, setQr] = useState<string | null>(null);
  const [code, setCode] = useState("");
  useEffect(() => {
    let current = true;
    QRCode.toDataURL(enrolment.otpauth_uri, { margin: 1, width: 220 }).then(
      (url) => current && setQr(url),
      () => current && setQr(null),
    );
    return () => {
      current = false;
    };
  }, [enrolment.otpauth_uri]);
  const confirm = useMutation({
    mutationFn: () => run(async () => unwrap(await api.POST("/api/v1/auth/mfa/totp/confirm", { body: { code } }))),
    onSuccess: (answer) => onConfirmed(answer.recovery_codes),
  });
  const { fields, message } = formErrors(confirm.error);

  function submit(event: FormEvent) {
    event.preventDefault();
    confirm.mutate();
  }

  return (
    <div className="stack">
      <p>{t("mfa.scan")}</p>
      {qr && <img className="account-qr" src={qr} alt={t("mfa.qr")} width={220} height={220} />}
      <dl className="account-facts">
        <dt>{t("mfa.secret")}</dt>
        <dd>
          <code className="account-secret" data-testid="totp-secret">
            {enrolment.secret}
          </code>{" "}
          <CopyButton text={enrolment.secret} />
        </dd>
      </dl>
      <form onSubmit={submit} noValidate>
        <Field label={t("mfa.firstCode")} name="code" autoComplete="one-time-code" inputMode="numeric" required
          value={code} onChange={(event) => setCode(event.target.value.trim())} error={fields.code} />
        <FormProblem message={message} />
        <div className="row">
          <button type="submit" className="primary" disabled={confirm.isPending || code.length < 6}>
            {t("mfa.confirm")}
          </button>
          <button type="button" onClick={onCancel}>
            {t("cancel", { ns: "common" })}
          </button>
        </div>
      </form>
    </div>
  );
}

export function RecoveryCodes({ codes, onDone }: { codes: string[]; onDone: () => void }) {
  const { t } = useTranslation("account");
  const text = codes.join("\n") + "\n";
  function download() {
    const url = URL.createObjectURL(new Blob([text], { type: "text/plain" }));
    const link = document.createElement("a");
    link.href = url;
    link.download = "kai-recovery-codes.txt";
    document.body.append(link);
    link.click();
    link.remove();
    window.setTimeout(() => URL.revokeObjectURL(url), 1000);
  }
  return (
    <div className="stack">
      <h3>{t("mfa.codesTitle")}</h3>
      <p className="account-warning" role="alert">
        {t("mfa.codesWarning")}
      </p>
      <ul className="account-codes" aria-label={t("mfa.codesLabel")}>
        {codes.map((code) => (
          <li key={code}>
            <code>{code}</code>
          </li>
        ))}
      </ul>
      <div className="row">
        <CopyButton text={text} label={t("mfa.copyCodes")} />
        <button type="button" onClick={download}>
          {t("mfa.download")}
        </button>
        <button type="button" className="primary" onClick={onDone}>
          {t("mfa.codesSaved")}
        </button>
      </div>
    </div>
  );
}

/** Password and a current code: what turning TOTP off or replacing recovery codes needs. */
function Reauthenticate({
  purpose,
  onDone,
}: {
  purpose: "disable" | "regenerate";
  onDone: (codes: string[] | null) => void;
}) {
  const { t } = useTranslation("account");
  const [password, setPassword] = useState("");
  const [code, setCode] = useState("");
  const action = useMutation({
    mutationFn: async () => {
      const body = { password, code };
      if (purpose === "disable") {
        unwrap(await api.POST("/api/v1/auth/mfa/totp/disable", { body }));
        return null;
      }
      return unwrap(await api.POST("/api/v1/auth/mfa/recovery-codes", { body })).recovery_codes;
    },
    onSuccess: onDone,
  });
  const { fields, message } = formErrors(action.error);
  return (
    <form
      className="stack"
      noValidate
      onSubmit={(event) => {
        event.preventDefault();
        action.mutate();
      }}
    >
      {purpose === "regenerate" && <p>{t("mfa.regenerateText")}</p>}
      <Field label={t("mfa.password")} type="password" name="password" autoComplete="current-password" required
        autoFocus value={password} onChange={(event) => setPassword(event.target.value)} error={fields.password} />
      <Field label={t("mfa.code")} name="code" autoComplete="one-time-code" required value={code}
        onChange={(event) => setCode(event.target.value.trim())} error={fields.code} />
      <FormProblem message={message} />
      <button type="submit" className={purpose === "disable" ? "danger" : "primary"}
        disabled={action.isPending || !password || code.length < 6}>
        {purpose === "disable" ? t("mfa.disableConfirm") : t("mfa.regenerateConfirm")}
      </button>
    </form>
  );
}
