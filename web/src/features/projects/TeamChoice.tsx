// Which teams see a project: none chosen means everyone who may read recognitions.
import { useTranslation } from "react-i18next";

import { describe } from "../../api/problem";
import { useTeams } from "./api";

export function TeamChoice({ value, onChange }: { value: string[]; onChange: (teamIds: string[]) => void }) {
  const { t } = useTranslation("projects");
  const teams = useTeams();
  if (!teams.canSee) return null;
  const items = teams.data?.items ?? [];
  return (
    <fieldset className="team-choice">
      <legend>{t("sharedWith")}</legend>
      <p className="hint muted">{t("sharedWithHint")}</p>
      {teams.isPending && <p className="muted">{t("common:loading")}</p>}
      {teams.error && <p className="form-problem">{describe(teams.error)}</p>}
      {!teams.isPending && !teams.error && items.length === 0 && <p className="muted">{t("noTeams")}</p>}
      {items.map((team) => (
        <label key={team.id} className="check">
          <input
            type="checkbox"
            checked={value.includes(team.id)}
            onChange={(event) =>
              onChange(event.target.checked ? [...value, team.id] : value.filter((id) => id !== team.id))
            }
          />
          {team.name}
        </label>
      ))}
    </fieldset>
  );
}

/** The names of the teams a project is shared with, or that everyone sees it. */
export function SharedWith({ teamIds }: { teamIds: string[] }) {
  const { t } = useTranslation("projects");
  const teams = useTeams();
  if (teamIds.length === 0) return <span>{t("sharedWithEveryone")}</span>;
  const names = teamIds.map((id) => teams.data?.items.find((team) => team.id === id)?.name ?? t("unknownTeam"));
  return <span>{t("sharedWithTeams", { teams: names.join(", ") })}</span>;
}
