// Confirms making a ready version the one every recognition uses.
import { useMutation, useQueryClient } from "@tanstack/react-query";
import { useTranslation } from "react-i18next";

import { ConfirmDialog } from "../../components/Dialog";
import { activateVersion, keys, type ModelVersion } from "./api";

export function ActivateDialog({ version, onClose }: { version: ModelVersion | null; onClose: () => void }) {
  const { t } = useTranslation("models");
  const client = useQueryClient();
  const activate = useMutation({
    mutationFn: activateVersion,
    onSuccess: async () => {
      await client.invalidateQueries({ queryKey: keys.all });
      onClose();
    },
  });
  const close = () => {
    activate.reset();
    onClose();
  };
  return (
    <ConfirmDialog
      open={version !== null}
      title={t("activateTitle")}
      confirmLabel={t("activateConfirm", { number: version?.number })}
      tone="primary"
      pending={activate.isPending}
      error={activate.error}
      onConfirm={() => version && activate.mutate(version.id)}
      onClose={close}
    >
      {version && <p>{t("activateText", { number: version.number })}</p>}
    </ConfirmDialog>
  );
}
