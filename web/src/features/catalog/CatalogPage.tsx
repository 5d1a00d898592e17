// The catalog: categories to browse, one search box, facets, and the materials as tiles or a
// table, with a selection to edit or delete in bulk.
import { keepPreviousData, useQuery } from "@tanstack/react-query";
import { memo, useCallback, useEffect, useMemo, useRef, useState } from "react";
import { useTranslation } from "react-i18next";
import { Link, useLocation, useNavigate, useSearchParams } from "react-router";

import { api, type Schemas } from "../../api/client";
import { unwrap } from "../../api/problem";
import { useCan } from "../../app/me";
import { ApiImage } from "../../components/ApiImage";
import { Empty, ErrorState, Loading } from "../../components/States";
import { useCursorList, useLoadMoreOnView } from "../../components/lists";
import { convertMeasure, useFormat } from "../../i18n/format";
import { treeOrder, useCategories, type Category, type Material } from "./api";
import { BulkActions } from "./BulkActions";
import { SearchBox } from "./SearchBox";
import { describeValue } from "./schemaForm";
import "./catalog.css";

type Hit = Schemas["SearchHit"];
type Facets = Schemas["Facets"];
type Mode = "hybrid" | "fulltext" | "semantic";
type Sort = "relevance" | "name" | "newest" | "price_asc" | "price_desc";
type View = "grid" | "table";

const MODES: Mode[] = ["fulltext", "semantic", "hybrid"];
const SORTS: Sort[] = ["relevance", "name", "newest", "price_asc", "price_desc"];
const VIEW_KEY = "kai.catalog.view";

function storedView(): View {
  try {
    return localStorage.getItem(VIEW_KEY) === "table" ? "table" : "grid";
  } catch {
    return "grid";
  }
}

export default function CatalogPage() {
  const { t } = useTranslation("catalog");
  const canWrite = useCan("materials:write");
  const [params, setParams] = useSearchParams();
  const navigate = useNavigate();
  const location = useLocation();
  const categories = useCategories();
  const [view, setView] = useState<View>(storedView);
  const [selected, setSelected] = useState<Map<string, Material>>(new Map());
  const [bulkNotice, setBulkNotice] = useState("");
  const notice = bulkNotice || ((location.state as { notice?: string } | null)?.notice ?? "");

  const q = params.get("q") ?? "";
  const mode = (params.get("mode") as Mode | null) ?? "hybrid";
  const sort = (params.get("sort") as Sort | null) ?? (q ? "relevance" : "name");
  const categoryId = params.get("category") ?? "";
  const filters = params.getAll("filter");
  const statuses = params.getAll("status") as Schemas["MaterialStatus"][];
  const tags = params.getAll("tag");
  const priceMin = params.get("price_min") ?? "";
  const priceMax = params.get("price_max") ?? "";

  // Stable, so the parts of the page that only change the address (the category tree) are not
  // drawn again with every search.
  const setParamsNow = useRef(setParams);
  useEffect(() => {
    setParamsNow.current = setParams;
  });
  const update = useCallback((change: (next: URLSearchParams) => void, replace = false) => {
    setParamsNow.current(
      (current) => {
        const next = new URLSearchParams(current);
        change(next);
        return next;
      },
      { replace },
    );
    setSelected((current) => (current.size ? new Map() : current));
  }, []);
  const chooseCategory = useCallback(
    (id: string) =>
      update((next) => {
        if (id) next.set("category", id);
        else next.delete("category");
        next.delete("filter");
      }),
    [update],
  );
  const refetchCategories = categories.refetch;
  const retryCategories = useCallback(() => void refetchCategories(), [refetchCategories]);

  useEffect(() => {
    try {
      localStorage.setItem(VIEW_KEY, view);
    } catch {
      // A browser that keeps nothing shows tiles next time; nothing is lost.
    }
  }, [view]);

  const asked = {
    q: q || undefined,
    mode,
    category_id: categoryId || undefined,
    filter: filters.length ? filters : undefined,
    status: statuses.length ? statuses : undefined,
    tag: tags.length ? tags : undefined,
    price_min: priceMin || undefined,
    price_max: priceMax || undefined,
    units: "metric" as const,
  };
  const results = useCursorList<Hit>(
    ["catalog", "search", asked, sort],
    async (cursor, signal) =>
      unwrap(
        await api.GET("/api/v1/search", {
          params: { query: { ...asked, sort, facets: false, cursor, limit: 48 } },
          signal,
        }),
      ),
    { keepPrevious: true },
  );
  const first = results.data?.pages[0] as Schemas["SearchResults"] | undefined;
  const answered = results.isSuccess && !results.isPlaceholderData;
  // The counts come second: counting every match of a common word (or the whole catalog) takes
  // longer than finding the first page, so the materials show first and the counts when ready.
  const counts = useQuery({
    queryKey: ["catalog", "facets", asked],
    queryFn: async ({ signal }) => unwrap(await api.GET("/api/v1/search/facets", { params: { query: asked }, signal })),
    enabled: answered,
    placeholderData: keepPreviousData,
    staleTime: 30_000,
  });
  // Stable, so the scroll sentinel's observer is not made anew on every render.
  const latest = useRef(results);
  useEffect(() => {
    latest.current = results;
  });
  const loadMore = useCallback(() => {
    const current = latest.current;
    if (current.hasNextPage && !current.isFetchingNextPage) void current.fetchNextPage();
  }, []);
  const sentinel = useLoadMoreOnView(Boolean(results.hasNextPage), loadMore);

  const byId = useMemo(() => new Map((categories.data ?? []).map((category) => [category.id, category])), [categories.data]);
  const category = categoryId ? byId.get(categoryId) : undefined;
  // The same array while the answer is the same, so the tiles are not drawn again while the
  // next search is on its way (drawing 48 tiles is most of a keystroke's work on a slow phone).
  const pages = results.data?.pages;
  const materials = useMemo(() => (pages ?? []).flatMap((page) => page.items.map((hit) => hit.material)), [pages]);

  const toggle = useCallback((material: Material) => {
    setSelected((current) => {
      const next = new Map(current);
      if (next.has(material.id)) next.delete(material.id);
      else next.set(material.id, material);
      return next;
    });
  }, []);
  const toggleAll = useCallback(
    (all: boolean) => setSelected(all ? new Map(materials.map((material) => [material.id, material])) : new Map()),
    [materials],
  );

  return (
    <div className="catalog-page">
      <div className="page-header">
        <h1>{category ? category.name : t("title")}</h1>
        {canWrite && (
          <nav aria-label={t("manage")} className="catalog-manage">
            <Link to="/catalog/categories">{t("links.categories")}</Link>
            <Link to="/catalog/import">{t("links.import")}</Link>
            <Link to="/catalog/duplicates">{t("links.duplicates")}</Link>
            <Link to="/catalog/trash">{t("links.trash")}</Link>
          </nav>
        )}
        {canWrite && (
          <Link className="button primary" to={`/catalog/materials/new${categoryId ? `?category=${categoryId}` : ""}`}>
            {t("newMaterial")}
          </Link>
        )}
      </div>
      <p className="catalog-notice" role="status" aria-live="polite">
        {notice}
      </p>
      <div className="catalog-layout">
        <CategoryTree
          categories={categories.data}
          error={categories.error}
          pending={categories.isPending}
          retry={retryCategories}
          current={categoryId}
          choose={chooseCategory}
        />
        <div className="catalog-main">
          <SearchBox
            value={q}
            onSearch={(text, typing) =>
              // Each pause in typing replaces the address; a search the person asked for adds
              // a step to the history.
              update((next) => {
                if (text) next.set("q", text);
                else next.delete("q");
                next.delete("sort");
              }, typing)
            }
            onPick={(suggestion) => {
              if (suggestion.kind === "material") navigate(`/catalog/materials/${suggestion.id}`);
              else
                update((next) => {
                  next.set("category", suggestion.id!);
                  next.delete("q");
                  next.delete("filter");
                });
            }}
          />
          <div className="catalog-controls">
            <fieldset className="catalog-modes">
              <legend>{t("search.mode")}</legend>
              {MODES.map((option) => (
                <label key={option}>
                  <input
                    type="radio"
                    name="mode"
                    value={option}
                    checked={mode === option}
                    onChange={() => update((next) => next.set("mode", option))}
                  />
                  {t(`mode.${option}`)}
                </label>
              ))}
            </fieldset>
            <label className="catalog-sort">
              <span>{t("sort.label")}</span>
              <select value={sort} onChange={(event) => update((next) => next.set("sort", event.target.value))}>
                {SORTS.map((option) => (
                  <option key={option} value={option}>
                    {t(`sort.${option}`)}
                  </option>
                ))}
              </select>
            </label>
            <div className="catalog-view" role="group" aria-label={t("view.label")}>
              <button type="button" aria-pressed={view === "grid"} onClick={() => setView("grid")}>
                {t("view.grid")}
              </button>
              <button type="button" aria-pressed={view === "table"} onClick={() => setView("table")}>
                {t("view.table")}
              </button>
            </div>
          </div>
          {first?.corrected_query && (
            <p className="catalog-corrected">{t("search.corrected", { query: first.corrected_query })}</p>
          )}
          <FacetFilters
            facets={counts.data?.facets ?? null}
            filters={filters}
            statuses={statuses}
            tags={tags}
            prices={[params.get("price_min"), params.get("price_max")].filter((value): value is string => Boolean(value))}
            update={update}
          />
          <p className="muted" role="status" aria-live="polite">
            {counts.data && !counts.isPlaceholderData ? t("results.count", { count: counts.data.total }) : ""}
          </p>
          {canWrite && selected.size > 0 && (
            <BulkActions
              selected={[...selected.values()]}
              categories={categories.data ?? []}
              category={category}
              onDone={(message) => {
                setSelected(new Map());
                if (message) setBulkNotice(message);
              }}
            />
          )}
          {/* Which query the results below answer: while a new one loads, the previous stay. */}
          <div
            className="catalog-results"
            aria-busy={results.isPlaceholderData || results.isPending}
            data-results-for={results.isPlaceholderData || results.isPending ? undefined : q}
          >
          {results.isPending ? (
            <Loading />
          ) : results.error ? (
            <ErrorState error={results.error} onRetry={() => void results.refetch()} />
          ) : materials.length === 0 ? (
            <Empty
              action={
                canWrite && !q && !filters.length ? (
                  <Link className="button" to={`/catalog/materials/new${categoryId ? `?category=${categoryId}` : ""}`}>
                    {t("newMaterial")}
                  </Link>
                ) : undefined
              }
            >
              {q || filters.length || statuses.length || tags.length ? t("results.noMatch") : t("results.empty")}
            </Empty>
          ) : view === "grid" ? (
            <MaterialGrid materials={materials} selected={selected} toggle={canWrite ? toggle : null} />
          ) : (
            <MaterialTable
              materials={materials}
              category={category}
              selected={selected}
              toggle={canWrite ? toggle : null}
              toggleAll={toggleAll}
            />
          )}
          </div>
          {results.hasNextPage && (
            <div ref={sentinel} className="catalog-more">
              <button type="button" onClick={loadMore} disabled={results.isFetchingNextPage}>
                {results.isFetchingNextPage ? t("loading", { ns: "common" }) : t("loadMore", { ns: "common" })}
              </button>
            </div>
          )}
        </div>
      </div>
    </div>
  );
}

const CategoryTree = memo(function CategoryTree({
  categories,
  error,
  pending,
  retry,
  current,
  choose,
}: {
  categories: Category[] | undefined;
  error: unknown;
  pending: boolean;
  retry: () => void;
  current: string;
  choose: (id: string) => void;
}) {
  const { t } = useTranslation("catalog");
  const nodes = useMemo(() => treeOrder(categories ?? []), [categories]);
  if (pending) return <aside className="catalog-tree"><Loading /></aside>;
  if (error) return <aside className="catalog-tree"><ErrorState error={error} onRetry={retry} /></aside>;
  return (
    <aside className="catalog-tree">
      <nav aria-label={t("categories")} className="catalog-tree-list">
        <h2 className="catalog-tree-heading">{t("categories")}</h2>
        <ul>
          <li>
            <button type="button" className="catalog-tree-item" aria-current={current === "" ? "true" : undefined} onClick={() => choose("")}>
              {t("allMaterials")}
            </button>
          </li>
          {nodes.map(({ category, depth }) => (
            <li key={category.id}>
              <button
                type="button"
                className={`catalog-tree-item depth-${Math.min(depth, 5)}`}
                aria-current={current === category.id ? "true" : undefined}
                onClick={() => choose(category.id)}
              >
                {category.name}
              </button>
            </li>
          ))}
        </ul>
        {nodes.length === 0 && <p className="muted">{t("noCategories")}</p>}
      </nav>
      <label className="catalog-tree-select">
        <span>{t("categories")}</span>
        <select value={current} onChange={(event) => choose(event.target.value)}>
          <option value="">{t("allMaterials")}</option>
          {nodes.map(({ category, depth }) => (
            <option key={category.id} value={category.id}>
              {"\u00a0\u00a0".repeat(depth)}
              {category.name}
            </option>
          ))}
        </select>
      </label>
    </aside>
  );
});

function FacetFilters({
  facets,
  filters,
  statuses,
  tags,
  prices,
  update,
}: {
  facets: Facets | null;
  filters: string[];
  statuses: string[];
  tags: string[];
  prices: string[];
  update: (change: (next: URLSearchParams) => void) => void;
}) {
  const { t } = useTranslation("catalog");
  const { units, number } = useFormat();
  const shown = (value: number, unit: string | null | undefined) =>
    unit ? number(convertMeasure(value, unit, units).value) : number(value);
  const chosen = (key: string) => filters.find((filter) => filter.startsWith(`${key}:`))?.slice(key.length + 1) ?? "";
  const setFilter = (key: string, value: string) =>
    update((next) => {
      const kept = next.getAll("filter").filter((filter) => !filter.startsWith(`${key}:`));
      next.delete("filter");
      for (const filter of kept) next.append("filter", filter);
      if (value) next.append("filter", `${key}:${value}`);
    });
  const setList = (name: string, value: string) =>
    update((next) => {
      next.delete(name);
      if (value) next.append(name, value);
    });
  const any = filters.length + statuses.length + tags.length + prices.length > 0;
  // A numeric facet's buckets: `key>=min` and `key<max` (the last bucket includes its maximum).
  const rangeChosen = (facetKey: string) => {
    const key = facetKey.replace(/^properties\./, "");
    return key === "price"
      ? prices.join("|")
      : filters
          .filter((filter) => filter.startsWith(`${key}>=`) || filter.startsWith(`${key}<`))
          .map((filter) => filter.replace(/^[a-z0-9_]+(>=|<=|<)/, ""))
          .join("|");
  };
  const setRange = (facetKey: string, chosen: string) =>
    update((next) => {
      const key = facetKey.replace(/^properties\./, "");
      const [minimum, maximum, last] = chosen ? chosen.split("|") : [];
      if (key === "price") {
        next.delete("price_min");
        next.delete("price_max");
        if (chosen) {
          next.set("price_min", minimum!);
          next.set("price_max", maximum!);
        }
        return;
      }
      const bound = new RegExp(`^${key}(>=|<=|<)`);
      const kept = next.getAll("filter").filter((filter) => !bound.test(filter));
      next.delete("filter");
      for (const filter of kept) next.append("filter", filter);
      if (chosen) {
        next.append("filter", `${key}>=${minimum}`);
        next.append("filter", `${key}${last ? "<=" : "<"}${maximum}`);
      }
    });
  const properties = (facets?.properties ?? []).filter((facet) => facet.values.length > 0 || chosen(facet.key));
  const ranges = (facets?.ranges ?? []).filter((facet) => facet.buckets.length > 1 || rangeChosen(facet.key));
  const statusValues = facets?.statuses ?? [];
  const tagValues = facets?.tags ?? [];
  if (!any && !properties.length && !statusValues.length && !tagValues.length) return null;
  return (
    <section className="catalog-facets" aria-labelledby="facets-heading">
      <h2 id="facets-heading" className="visually-hidden">
        {t("facets.title")}
      </h2>
      {properties.map((facet) => (
        <label key={facet.key} className="catalog-facet">
          <span>{facet.label}</span>
          <select value={chosen(facet.key)} onChange={(event) => setFilter(facet.key, event.target.value)}>
            <option value="">{t("facets.any")}</option>
            {facet.values.map((value) => (
              <option key={value.value} value={value.value}>
                {t("facets.option", { label: value.label, count: value.count })}
              </option>
            ))}
          </select>
        </label>
      ))}
      {ranges.map((facet) => (
        <label key={facet.key} className="catalog-facet">
          <span>
            {facet.key === "price"
              ? t("form.price")
              : facet.unit
                ? `${facet.label} (${convertMeasure(1, facet.unit, units).unit})`
                : facet.label}
          </span>
          <select
            value={facet.buckets.map((bucket, index) => bucketValue(bucket, index === facet.buckets.length - 1)).find(
              (value) => value.split("|").slice(0, 2).join("|") === rangeChosen(facet.key),
            ) ?? ""}
            onChange={(event) => setRange(facet.key, event.target.value)}
          >
            <option value="">{t("facets.any")}</option>
            {facet.buckets.map((bucket, index) => (
              <option key={bucket.minimum} value={bucketValue(bucket, index === facet.buckets.length - 1)}>
                {t("facets.option", {
                  label: t("facets.range", { from: shown(bucket.minimum, facet.unit), to: shown(bucket.maximum, facet.unit) }),
                  count: bucket.count,
                })}
              </option>
            ))}
          </select>
        </label>
      ))}
      {statusValues.length > 0 && (
        <label className="catalog-facet">
          <span>{t("form.status")}</span>
          <select value={statuses[0] ?? ""} onChange={(event) => setList("status", event.target.value)}>
            <option value="">{t("facets.any")}</option>
            {statusValues.map((value) => (
              <option key={value.value} value={value.value}>
                {t("facets.option", { label: t(`status.${value.value}`, { defaultValue: value.label }), count: value.count })}
              </option>
            ))}
          </select>
        </label>
      )}
      {tagValues.length > 0 && (
        <label className="catalog-facet">
          <span>{t("form.tags")}</span>
          <select value={tags[0] ?? ""} onChange={(event) => setList("tag", event.target.value)}>
            <option value="">{t("facets.any")}</option>
            {tagValues.map((value) => (
              <option key={value.value} value={value.value}>
                {t("facets.option", { label: value.label, count: value.count })}
              </option>
            ))}
          </select>
        </label>
      )}
      {any && (
        <button
          type="button"
          className="link-button"
          onClick={() =>
            update((next) => {
              next.delete("filter");
              next.delete("status");
              next.delete("tag");
              next.delete("price_min");
              next.delete("price_max");
            })
          }
        >
          {t("facets.clear")}
        </button>
      )}
    </section>
  );
}

function bucketValue(bucket: Schemas["RangeBucket"], last: boolean): string {
  return `${bucket.minimum}|${bucket.maximum}${last ? "|last" : ""}`;
}

/** The tile's picture: the thumbnail the search answered with the material, if any. */
function Thumbnail({ material, className }: { material: Material; className?: string }) {
  if (material.thumbnail_url) return <ApiImage src={material.thumbnail_url} alt={material.name} className={className} />;
  return (
    <span className={`catalog-no-image ${className ?? ""}`} aria-hidden="true">
      {material.name.slice(0, 1).toUpperCase()}
    </span>
  );
}

function SelectBox({ material, selected, toggle }: { material: Material; selected: boolean; toggle: (material: Material) => void }) {
  const { t } = useTranslation("catalog");
  return (
    <input
      type="checkbox"
      className="catalog-select"
      checked={selected}
      onChange={() => toggle(material)}
      aria-label={t("select", { name: material.name })}
    />
  );
}

const MaterialGrid = memo(function MaterialGrid({
  materials,
  selected,
  toggle,
}: {
  materials: Material[];
  selected: Map<string, Material>;
  toggle: ((material: Material) => void) | null;
}) {
  const { t } = useTranslation("catalog");
  const { money } = useFormat();
  return (
    <ul className="grid catalog-grid" aria-label={t("results.label")}>
      {materials.map((material) => (
        <li key={material.id} className={`tile${selected.has(material.id) ? " selected" : ""}`} data-material-id={material.id}>
          <Link to={`/catalog/materials/${material.id}`} className="catalog-tile-link">
            <span className="thumb">
              <Thumbnail material={material} />
            </span>
            <span className="tile-body">
              <strong>{material.name}</strong>
              <small className="muted">{material.code}</small>
              {material.price && material.currency && <small>{money(material.price, material.currency)}</small>}
            </span>
          </Link>
          {toggle && <SelectBox material={material} selected={selected.has(material.id)} toggle={toggle} />}
        </li>
      ))}
    </ul>
  );
});

const MaterialTable = memo(function MaterialTable({
  materials,
  category,
  selected,
  toggle,
  toggleAll,
}: {
  materials: Material[];
  category: Category | undefined;
  selected: Map<string, Material>;
  toggle: ((material: Material) => void) | null;
  toggleAll: (all: boolean) => void;
}) {
  const { t } = useTranslation("catalog");
  const { money, measure, number } = useFormat();
  const columns = (category?.effective_properties ?? []).slice(0, 4);
  const yesNo = (value: boolean) => t(value ? "yes" : "no");
  const all = materials.length > 0 && materials.every((material) => selected.has(material.id));
  return (
    <div className="table-wrap">
      <table>
        <caption className="visually-hidden">{t("results.label")}</caption>
        <thead>
          <tr>
            {toggle && (
              <th scope="col">
                <input type="checkbox" checked={all} onChange={() => toggleAll(!all)} aria-label={t("selectAll")} />
              </th>
            )}
            <th scope="col">
              <span className="visually-hidden">{t("table.image")}</span>
            </th>
            <th scope="col">{t("form.name")}</th>
            <th scope="col">{t("form.code")}</th>
            <th scope="col">{t("form.status")}</th>
            {columns.map((definition) => (
              <th scope="col" key={definition.key}>
                {definition.label}
              </th>
            ))}
            <th scope="col">{t("form.price")}</th>
          </tr>
        </thead>
        <tbody>
          {materials.map((material) => (
            <tr key={material.id} data-material-id={material.id}>
              {toggle && (
                <td>
                  <SelectBox material={material} selected={selected.has(material.id)} toggle={toggle} />
                </td>
              )}
              <td className="catalog-table-thumb">
                <Thumbnail material={material} />
              </td>
              <td>
                <Link to={`/catalog/materials/${material.id}`}>{material.name}</Link>
              </td>
              <td>{material.code}</td>
              <td>{t(`status.${material.status}`)}</td>
              {columns.map((definition) => (
                <td key={definition.key}>{describeValue(definition, material.properties[definition.key], measure, number, yesNo)}</td>
              ))}
              <td>{material.price && material.currency ? money(material.price, material.currency) : ""}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
});
