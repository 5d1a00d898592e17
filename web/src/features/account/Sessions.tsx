// Where the account is signed in: each session with its device and when it was last active,
// a way to sign out one that is not this one, and to log out everywhere at once.
import { useMutation, useQueryClient } from "@tanstack/react-query";
import { useState } from "react";
import { useTranslation } from "react-i18next";
import { useNavigate } from "react-router";

import { api, type Schemas } from "../../api/client";
import { unwrap } from "../../api/problem";
import { forget } from "../../auth/session";
import { ConfirmDialog } from "../../components/Dialog";
import { FormProblem, formErrors } from "../../components/Form";
import { useCursorList } from "../../components/lists";
import { QueryState } from "../../components/States";
import { useFormat } from "../../i18n/format";
import type { RunWithStepUp } from "./SecurityPage";

type Session = Schemas["SessionRead"];

const SESSIONS_KEY = ["account", "sessions"] as const;

export function Sessions({ run }: { run: RunWithStepUp }) {
  const { t } = useTranslation("account");
  const deviceName = useDeviceName();
  const client = useQueryClient();
  const sessions = useCursorList(SESSIONS_KEY, async (cursor) =>
    unwrap(await api.GET("/api/v1/me/sessions", { params: { query: { cursor, limit: 50 } } })),
  );
  const [ending, setEnding] = useState<Session | null>(null);
  const [status, setStatus] = useState("");
  const end = useMutation({
    mutationFn: (session: Session) =>
      run(async () =>
        unwrap(await api.DELETE("/api/v1/me/sessions/{session_id}", { params: { path: { session_id: session.id } } })),
      ),
    onSuccess: (_, session) => {
      setStatus(t("sessions.ended", { device: deviceName(session) }));
      setEnding(null);
    },
    // Ended or not, the list shows what is true now (another tab may have ended it first).
    onSettled: () => void client.invalidateQueries({ queryKey: SESSIONS_KEY }),
  });

  return (
    <section className="card" aria-labelledby="sessions-title">
      <h2 id="sessions-title">{t("sessions.title")}</h2>
      <p>{t("sessions.intro")}</p>
      <p className="muted" role="status" aria-live="polite">
        {status}
      </p>
      <QueryState query={sessions} isEmpty={() => sessions.items.length === 0} empty={t("sessions.empty")}>
        {() => (
          <>
            <ul className="account-list" aria-label={t("sessions.list")}>
              {sessions.items.map((session) => (
                <SessionItem key={session.id} session={session} onSignOut={() => setEnding(session)} />
              ))}
            </ul>
            {sessions.hasNextPage && (
              <button type="button" onClick={() => void sessions.fetchNextPage()} disabled={sessions.isFetchingNextPage}>
                {t("loadMore", { ns: "common" })}
              </button>
            )}
          </>
        )}
      </QueryState>
      <LogOutEverywhere run={run} />
      <ConfirmDialog
        open={ending !== null}
        title={t("sessions.signOutTitle")}
        confirmLabel={t("sessions.signOut")}
        pending={end.isPending}
        error={end.error}
        onConfirm={() => ending && end.mutate(ending)}
        onClose={() => {
          setEnding(null);
          end.reset();
        }}
      >
        {ending && t("sessions.signOutText", { device: deviceName(ending) })}
      </ConfirmDialog>
    </section>
  );
}

function SessionItem({ session, onSignOut }: { session: Session; onSignOut: () => void }) {
  const { t } = useTranslation("account");
  const format = useFormat();
  const device = useDeviceName()(session);
  return (
    <li>
      <div>
        <strong>{device}</strong> {session.current && <span className="badge good">{t("sessions.thisDevice")}</span>}
        <div className="muted">
          {session.current ? (
            t("sessions.activeNow")
          ) : (
            <time dateTime={session.last_used_at} title={format.dateTime(session.last_used_at)}>
              {t("sessions.lastActive", { when: format.relative(session.last_used_at) })}
            </time>
          )}
          {" · "}
          {t("sessions.signedIn", { date: format.dateTime(session.created_at) })}
          {session.client_address && <> · {t("sessions.address", { address: session.client_address })}</>}
        </div>
        {/* A script or an unusual browser: what it sent is all there is to recognise it by. */}
        {!session.device && session.user_agent && <div className="muted account-agent">{session.user_agent}</div>}
      </div>
      {!session.current && (
        <button type="button" className="danger" onClick={onSignOut} aria-label={t("sessions.signOutNamed", { device })}>
          {t("sessions.signOut")}
        </button>
      )}
    </li>
  );
}

/** "Chrome on macOS" in the reader's words, from what the API read of the user agent. */
function useDeviceName(): (session: Session) => string {
  const { t } = useTranslation("account");
  return (session) => {
    if (session.browser && session.os) return t("sessions.deviceOn", { browser: session.browser, os: session.os });
    return session.browser ?? session.os ?? t("sessions.unknownDevice");
  };
}

function LogOutEverywhere({ run }: { run: RunWithStepUp }) {
  const { t } = useTranslation("account");
  const client = useQueryClient();
  const navigate = useNavigate();
  const logout = useMutation({
    mutationFn: () => run(async () => unwrap(await api.POST("/api/v1/auth/logout-everywhere"))),
    onSuccess: () => {
      forget();
      client.clear();
      navigate("/login", { replace: true });
    },
  });
  const { message } = formErrors(logout.error);
  return (
    <div className="stack account-everywhere">
      <p>{t("sessions.explain")}</p>
      <FormProblem message={message} />
      <div>
        <button type="button" className="danger" onClick={() => logout.mutate()} disabled={logout.isPending}>
          {t("sessions.logoutEverywhere")}
        </button>
      </div>
    </div>
  );
}
