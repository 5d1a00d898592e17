// The parts of a recognition's answer that need nothing but the answer: the confidence bars,
// why it is unknown, the similar materials.
import { useTranslation } from "react-i18next";
import { Link } from "react-router";

import { ApiImage } from "../../components/ApiImage";
import { BarFill } from "../../components/JobProgress";
import { useFormat } from "../../i18n/format";
import type { LookAlike, Prediction, Recognition } from "./api";

/** Predictions, most confident first (the API sends them so, but the screen must not depend on it). */
export function sortedPredictions(predictions: readonly Prediction[]): Prediction[] {
  return [...predictions].sort((a, b) => b.confidence - a.confidence);
}

export function PredictionBars({ predictions, muted = false }: { predictions: readonly Prediction[]; muted?: boolean }) {
  const { t } = useTranslation("recognize");
  const format = useFormat();
  return (
    <ol className={`prediction-bars${muted ? " is-muted" : ""}`} aria-label={t("predictions")}>
      {sortedPredictions(predictions).map((prediction) => (
        <li key={prediction.label} className="prediction">
          <div className="prediction-text">
            <span className="prediction-label">{prediction.label}</span>
            <span className="prediction-value">{format.confidence(prediction.confidence)}</span>
          </div>
          <div className="bar" aria-hidden="true">
            <BarFill fraction={prediction.confidence} />
          </div>
        </li>
      ))}
    </ol>
  );
}

/** Why KAI would not name the material, in words a person on site understands. */
export function UnknownExplanation({ recognition, threshold }: { recognition: Recognition; threshold?: number | undefined }) {
  const { t } = useTranslation("recognize");
  const format = useFormat();
  if (!recognition.unknown) return null;
  const best = sortedPredictions(recognition.predictions)[0];
  let text: string;
  if (recognition.unknown_reason === "unlike_training") {
    text = t("unknownUnlike");
  } else if (recognition.unknown_reason === "low_confidence" && best) {
    const values = { label: best.label, confidence: format.confidence(best.confidence) };
    text =
      threshold === undefined
        ? t("unknownLowConfidenceNoThreshold", values)
        : t("unknownLowConfidence", { ...values, threshold: format.percent(threshold) });
  } else {
    text = t("unknownGeneric");
  }
  return (
    <div className="unknown-explanation" role="note">
      <h2>{t("unknownTitle")}</h2>
      <p>{text}</p>
    </div>
  );
}

/** Catalog materials that look like the photo, each linking to its page. */
export function LookAlikeGrid({ items, empty }: { items: readonly LookAlike[]; empty: string }) {
  const { t } = useTranslation("recognize");
  const format = useFormat();
  if (items.length === 0) return <p className="muted">{empty}</p>;
  return (
    <ul className="grid look-alikes">
      {items.map((item) => (
        <li key={item.material_id}>
          <Link to={`/catalog/materials/${item.material_id}`} className="tile">
            <span className="thumb">
              <ApiImage src={item.image_url} alt={item.name} />
            </span>
            <span className="tile-body">
              <strong className="tile-name">{item.name}</strong>
              <span className="muted tile-code">{item.code}</span>
              <span className="tile-score">{t("similarity", { score: format.percent(Math.max(0, item.score)) })}</span>
            </span>
          </Link>
        </li>
      ))}
    </ul>
  );
}
