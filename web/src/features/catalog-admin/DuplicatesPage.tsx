// /catalog/duplicates: images of different materials that look almost the same, side by side.
import { useState } from "react";
import { useTranslation } from "react-i18next";
import { Link } from "react-router";

import { api, type Schemas } from "../../api/client";
import { unwrap } from "../../api/problem";
import { useCan } from "../../app/me";
import { ApiImage } from "../../components/ApiImage";
import { Field } from "../../components/Form";
import { Empty, ErrorState, Loading } from "../../components/States";
import { useCursorList } from "../../components/lists";
import { useFormat } from "../../i18n/format";
import { AdminFrame, NotAllowed } from "./AdminFrame";

type Pair = Schemas["NearDuplicateRead"];

export default function DuplicatesPage() {
  const { t } = useTranslation("catalogAdmin");
  const canRead = useCan("materials:read");
  return <AdminFrame title={t("duplicates.title")}>{canRead ? <Duplicates /> : <NotAllowed />}</AdminFrame>;
}

function Duplicates() {
  const { t } = useTranslation("catalogAdmin");
  const [typed, setTyped] = useState("");
  const [threshold, setThreshold] = useState<number | null>(null);
  const list = useCursorList(["catalog", "near-duplicates", threshold], async (cursor) =>
    unwrap(await api.GET("/api/v1/catalog/near-duplicates", { params: { query: { threshold, cursor, limit: 50 } } })),
  );
  const typedValue = typed.trim() === "" ? null : Number(typed.replace(",", "."));
  const invalid = typedValue !== null && !(typedValue >= 50 && typedValue <= 100);
  return (
    <div className="stack">
      <p className="muted">{t("duplicates.hint")}</p>
      <form
        className="row align-end"
        noValidate
        onSubmit={(event) => {
          event.preventDefault();
          if (!invalid) setThreshold(typedValue === null ? null : typedValue / 100);
        }}
      >
        <Field label={t("duplicates.threshold")} inputMode="decimal" value={typed} placeholder={t("duplicates.thresholdDefault")}
          onChange={(event) => setTyped(event.target.value)} error={invalid ? t("duplicates.thresholdRange") : undefined} />
        <button type="submit">{t("duplicates.apply")}</button>
      </form>
      {list.isPending ? (
        <Loading />
      ) : list.error && !list.data ? (
        <ErrorState error={list.error} onRetry={() => void list.refetch()} />
      ) : list.items.length === 0 ? (
        <Empty>{t("duplicates.empty")}</Empty>
      ) : (
        <ul className="duplicate-list">
          {list.items.map((pair) => (
            <PairCard key={`${pair.image_id}-${pair.other_image_id}`} pair={pair} />
          ))}
        </ul>
      )}
      {list.hasNextPage && (
        <div className="row">
          <button type="button" onClick={() => void list.fetchNextPage()} disabled={list.isFetchingNextPage}>
            {t("loadMore")}
          </button>
        </div>
      )}
    </div>
  );
}

function PairCard({ pair }: { pair: Pair }) {
  const { t } = useTranslation("catalogAdmin");
  const format = useFormat();
  const sides = [
    { id: pair.material_id, name: pair.name, code: pair.code, image: pair.image_url },
    { id: pair.other_material_id, name: pair.other_name, code: pair.other_code, image: pair.other_image_url },
  ];
  return (
    <li className="card duplicate-pair">
      <p className="duplicate-similarity">{t("duplicates.similarity", { value: format.percent(pair.similarity) })}</p>
      <div className="duplicate-sides">
        {sides.map((side) => (
          <Link key={side.id} to={`/catalog/materials/${side.id}`} className="duplicate-side">
            <ApiImage src={side.image} alt={t("duplicates.imageOf", { name: side.name })} className="duplicate-image" />
            <span>{side.name}</span>
            <code className="muted">{side.code}</code>
          </Link>
        ))}
      </div>
    </li>
  );
}
