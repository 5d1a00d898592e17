// Profile (name, email) and preferences (language, units, notifications).
import { useMutation, useQueryClient } from "@tanstack/react-query";
import { useState, type FormEvent } from "react";
import { useTranslation } from "react-i18next";

import { api, type Schemas } from "../../api/client";
import { unwrap } from "../../api/problem";
import { useMe, useSession } from "../../app/me";
import { Field, FormProblem, SelectField, formErrors } from "../../components/Form";
import { QueryState } from "../../components/States";
import { changeLocale, supported } from "../../i18n";
import { AccountNav } from "./AccountRoutes";

type User = Schemas["UserRead"];
type ProfileUpdate = Schemas["ProfileUpdate"];
type Notifications = Schemas["NotificationSettings"];

const NOTIFICATIONS = ["recognition_finished", "training_finished", "security_alerts", "weekly_summary"] as const;
const LANGUAGES = [
  { value: "en", label: "English" },
  { value: "de", label: "Deutsch" },
] as const;

/** Saves profile changes and puts the answer into the `me` query at once, then refetches it. */
function useUpdateProfile() {
  const client = useQueryClient();
  const session = useSession();
  return useMutation({
    mutationFn: async (changes: ProfileUpdate) => unwrap(await api.PATCH("/api/v1/me", { body: changes })),
    onSuccess: (user: User) => {
      client.setQueryData<Schemas["MeRead"]>(["me", session.organizationId], (me) => (me ? { ...me, user } : me));
      changeLocale(user.locale);
      void client.invalidateQueries({ queryKey: ["me"] });
    },
  });
}

export function ProfilePage() {
  const { t } = useTranslation("account");
  const me = useMe();
  return (
    <div className="account stack">
      <header className="page-header">
        <h1>{t("title")}</h1>
      </header>
      <AccountNav />
      <QueryState query={me}>
        {(data) =>
          data.user ? (
            <>
              <ProfileForm user={data.user} />
              <PreferencesForm user={data.user} />
            </>
          ) : null
        }
      </QueryState>
    </div>
  );
}

function ProfileForm({ user }: { user: User }) {
  const { t } = useTranslation("account");
  const [name, setName] = useState(user.name);
  const update = useUpdateProfile();
  const { fields, message } = formErrors(update.error);

  function submit(event: FormEvent) {
    event.preventDefault();
    update.mutate({ name: name.trim() });
  }

  return (
    <section className="card" aria-labelledby="profile-title">
      <h2 id="profile-title">{t("profile.title")}</h2>
      <form onSubmit={submit} noValidate>
        <Field label={t("profile.name")} name="name" autoComplete="name" required maxLength={200} value={name}
          onChange={(event) => setName(event.target.value)} error={fields.name} />
        <dl className="account-facts">
          <dt>{t("profile.email")}</dt>
          <dd>
            {user.email}{" "}
            <span className={`badge ${user.email_verified ? "good" : "bad"}`}>
              {user.email_verified ? t("profile.verified") : t("profile.unverified")}
            </span>
          </dd>
        </dl>
        <FormProblem message={message} />
        <div className="row">
          <button type="submit" className="primary" disabled={update.isPending || !name.trim()}>
            {t("profile.save")}
          </button>
          <span role="status" aria-live="polite">
            {update.isSuccess && !update.isPending ? t("profile.saved") : ""}
          </span>
        </div>
      </form>
    </section>
  );
}

function PreferencesForm({ user }: { user: User }) {
  const { t } = useTranslation("account");
  const [locale, setLocale] = useState<string>(supported(user.locale));
  const [units, setUnits] = useState<User["units"]>(user.units);
  const [notifications, setNotifications] = useState<Required<Notifications>>({
    recognition_finished: user.notification_settings.recognition_finished ?? true,
    training_finished: user.notification_settings.training_finished ?? true,
    security_alerts: user.notification_settings.security_alerts ?? true,
    weekly_summary: user.notification_settings.weekly_summary ?? false,
  });
  const update = useUpdateProfile();
  const { fields, message } = formErrors(update.error);

  function submit(event: FormEvent) {
    event.preventDefault();
    update.mutate({ locale, units, notification_settings: notifications });
  }

  return (
    <section className="card" aria-labelledby="preferences-title">
      <h2 id="preferences-title">{t("preferences.title")}</h2>
      <form onSubmit={submit} noValidate className="stack">
        <SelectField label={t("preferences.language")} name="locale" value={locale} error={fields.locale}
          onChange={(event) => setLocale(event.target.value)}>
          {LANGUAGES.map((language) => (
            <option key={language.value} value={language.value} lang={language.value}>
              {language.label}
            </option>
          ))}
        </SelectField>
        <fieldset className="account-choices">
          <legend>{t("preferences.units")}</legend>
          {(["metric", "imperial"] as const).map((value) => (
            <label key={value}>
              <input type="radio" name="units" value={value} checked={units === value} onChange={() => setUnits(value)} />
              {t(`preferences.${value}`)}
            </label>
          ))}
        </fieldset>
        <fieldset className="account-choices">
          <legend>{t("preferences.notifications")}</legend>
          {NOTIFICATIONS.map((key) => (
            <label key={key}>
              <input
                type="checkbox"
                name={key}
                checked={notifications[key]}
                onChange={(event) => setNotifications({ ...notifications, [key]: event.target.checked })}
              />
              {t(`preferences.${key}`)}
            </label>
          ))}
        </fieldset>
        <FormProblem message={message} />
        <div className="row">
          <button type="submit" className="primary" disabled={update.isPending}>
            {t("preferences.save")}
          </button>
          <span role="status" aria-live="polite">
            {update.isSuccess && !update.isPending ? t("preferences.saved") : ""}
          </span>
        </div>
      </form>
    </section>
  );
}
