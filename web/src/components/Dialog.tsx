// A modal dialog on the native <dialog>: focus is trapped, Escape closes it, the page behind
// is inert. And the one every screen asks "are you sure?" with.
import { useEffect, useId, useRef, type ReactNode } from "react";
import { useTranslation } from "react-i18next";

import { FormProblem, problemSentence } from "./Form";

export function Dialog({
  open,
  title,
  onClose,
  children,
}: {
  open: boolean;
  title: string;
  onClose: () => void;
  children: ReactNode;
}) {
  const { t } = useTranslation();
  const ref = useRef<HTMLDialogElement>(null);
  // An id without spaces: aria-labelledby reads a space-separated list of ids.
  const titleId = useId();
  useEffect(() => {
    const dialog = ref.current;
    if (!dialog) return;
    if (open && !dialog.open) dialog.showModal?.();
    if (!open && dialog.open) dialog.close?.();
  }, [open]);
  return (
    <dialog ref={ref} onClose={onClose} onCancel={onClose} aria-labelledby={titleId}>
      <div className="dialog-header">
        <h2 id={titleId}>{title}</h2>
        <button type="button" className="link-button" onClick={onClose} aria-label={t("close")}>
          ✕
        </button>
      </div>
      {open && children}
    </dialog>
  );
}

/**
 * Asks before something the person should mean: deleting, purging, restoring, activating.
 * Cancel comes first and the confirm last, on the right. Enter in a field inside confirms.
 */
export function ConfirmDialog({
  open,
  title,
  children,
  confirmLabel,
  tone = "danger",
  pending,
  disabled = false,
  error,
  problem,
  onConfirm,
  onClose,
}: {
  open: boolean;
  title: string;
  children: ReactNode;
  confirmLabel: string;
  /** "danger" for what cannot be undone, "primary" for a change that can (restore, activate). */
  tone?: "danger" | "primary";
  pending: boolean;
  /** Holds the confirm back for a reason of the caller's own (a field still empty). */
  disabled?: boolean;
  /** Whatever the action threw; shown as one sentence, field errors included. */
  error: unknown;
  /** A sentence of the caller's own, shown instead of the one drawn from `error`. */
  problem?: string | null;
  /** Left out when the server's answer leaves nothing to confirm: only Cancel remains. */
  onConfirm?: (() => void) | undefined;
  onClose: () => void;
}) {
  const { t } = useTranslation();
  const blocked = pending || disabled;
  return (
    <Dialog open={open} title={title} onClose={onClose}>
      <form
        className="stack"
        noValidate
        onSubmit={(event) => {
          event.preventDefault();
          if (onConfirm && !blocked) onConfirm();
        }}
      >
        <div>{children}</div>
        <FormProblem message={problem ?? problemSentence(error)} />
        <div className="row dialog-actions">
          <button type="button" onClick={onClose}>
            {t("cancel")}
          </button>
          {onConfirm && (
            <button type="submit" className={tone} disabled={blocked}>
              {confirmLabel}
            </button>
          )}
        </div>
      </form>
    </Dialog>
  );
}
