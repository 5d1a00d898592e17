// The start page: where to go first, by what this person may do.
import { useTranslation } from "react-i18next";
import { Link, Navigate, useNavigation } from "react-router";

import { useMe } from "./me";
import { Empty, QueryState } from "../components/States";

export default function HomePage() {
  const { t } = useTranslation("auth");
  const me = useMe();
  // A person who already chose a screen (a link clicked while this page waited for their
  // profile) goes there: the default must not overtake their choice.
  const navigation = useNavigation();
  if (navigation.state !== "idle") return null;
  return (
    <QueryState query={me}>
      {(data) => {
        if (!data.organization) return <Empty action={<Link to="/account/organizations/new">{t("createOrganization")}</Link>}>{t("noOrganization")}</Empty>;
        if (data.permissions.includes("materials:read")) return <Navigate to="/catalog" replace />;
        if (data.permissions.includes("recognitions:create")) return <Navigate to="/recognize" replace />;
        return <Navigate to="/account" replace />;
      }}
    </QueryState>
  );
}
