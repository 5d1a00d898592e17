// Where a photo comes from: the phone's camera (a file input with `capture`, which a phone opens
// as its camera straight away), a file chosen on a computer, or one dropped onto the zone.
import { useId, useState, type DragEvent } from "react";
import { useTranslation } from "react-i18next";

export function PhotoPicker({
  onFiles,
  disabled = false,
  multiple = false,
  accept = "image/*",
}: {
  onFiles: (files: File[]) => void;
  disabled?: boolean;
  multiple?: boolean;
  accept?: string;
}) {
  const { t } = useTranslation("recognize");
  const cameraId = useId();
  const fileId = useId();
  const [over, setOver] = useState(false);

  function take(list: FileList | null) {
    const files = list ? Array.from(list) : [];
    if (files.length) onFiles(multiple ? files : files.slice(0, 1));
  }

  function drop(event: DragEvent) {
    event.preventDefault();
    setOver(false);
    if (!disabled) take(event.dataTransfer.files);
  }

  return (
    <div
      className={`photo-picker${over ? " is-over" : ""}`}
      onDragOver={(event) => {
        event.preventDefault();
        setOver(true);
      }}
      onDragLeave={() => setOver(false)}
      onDrop={drop}
    >
      {!multiple && (
        <div className="camera-button-wrap">
          <label htmlFor={cameraId} className={`button primary camera-button${disabled ? " is-disabled" : ""}`}>
            <span className="camera-icon" aria-hidden="true">
              ◉
            </span>
            {t("takePhoto")}
          </label>
          <input
            id={cameraId}
            className="visually-hidden camera-input"
            type="file"
            accept="image/*"
            capture="environment"
            disabled={disabled}
            aria-describedby={`${cameraId}-hint`}
            onChange={(event) => {
              take(event.target.files);
              event.target.value = "";
            }}
          />
          <small id={`${cameraId}-hint`} className="muted">
            {t("takePhotoHint")}
          </small>
        </div>
      )}
      <div className="drop-zone">
        <span className="muted drop-text">{multiple ? t("dropManyHere") : t("dropHere")}</span>
        <label htmlFor={fileId} className={`button file-button${disabled ? " is-disabled" : ""}`}>
          {multiple ? t("choosePhotos") : t("chooseFiles")}
        </label>
        <input
          id={fileId}
          className="visually-hidden file-input"
          type="file"
          accept={accept}
          multiple={multiple}
          disabled={disabled}
          onChange={(event) => {
            take(event.target.files);
            event.target.value = "";
          }}
        />
      </div>
    </div>
  );
}
