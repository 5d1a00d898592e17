// /recognize/search: reverse image search, a photo in and the catalog's look-alikes out.
import { useMutation } from "@tanstack/react-query";
import { useState } from "react";
import { useTranslation } from "react-i18next";

import { useCan } from "../../app/me";
import { ErrorState, Loading } from "../../components/States";
import { searchByImage } from "./api";
import { PhotoPicker } from "./PhotoPicker";
import { LookAlikeGrid } from "./RecognitionParts";
import { RecognizeTabs } from "./RecognizeTabs";
import { usePreview } from "./RecognizePage";

export function SearchPage() {
  const { t } = useTranslation("recognize");
  const canSearch = useCan("materials:read");
  const [file, setFile] = useState<File | null>(null);
  const preview = usePreview(file);
  const search = useMutation({ mutationFn: searchByImage });
  return (
    <div className="recognize-page">
      <header className="page-header">
        <h1>{t("searchTitle")}</h1>
      </header>
      <RecognizeTabs />
      <p>{t("searchIntro")}</p>
      {canSearch && (
        <PhotoPicker
          disabled={search.isPending}
          onFiles={([chosen]) => {
            if (!chosen) return;
            setFile(chosen);
            search.mutate(chosen);
          }}
        />
      )}
      <div aria-live="polite">{search.isPending && <Loading label={t("searching")} />}</div>
      {search.error && <ErrorState error={search.error} onRetry={file ? () => search.mutate(file) : undefined} />}
      {search.data && (
        <section aria-labelledby="look-alikes-heading" className="search-result">
          {preview && (
            <figure className="searched-photo">
              <img src={preview} alt={t("searchedPhoto")} />
            </figure>
          )}
          <div>
            <h2 id="look-alikes-heading">{t("lookAlikes")}</h2>
            <LookAlikeGrid items={search.data.items} empty={t("lookAlikesEmpty")} />
          </div>
        </section>
      )}
    </div>
  );
}
