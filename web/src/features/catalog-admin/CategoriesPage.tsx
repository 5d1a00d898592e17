// /catalog/categories: the category tree, each category's name, place and property schema.
import { useMutation, useQueryClient } from "@tanstack/react-query";
import { useEffect, useRef, useState, type FormEvent } from "react";
import { useTranslation } from "react-i18next";
import { useSearchParams } from "react-router";

import { api } from "../../api/client";
import { describe, unwrap } from "../../api/problem";
import { useCan } from "../../app/me";
import { ConfirmDialog } from "../../components/Dialog";
import { Field, FormProblem, SelectField, TextAreaField, formErrors } from "../../components/Form";
import { Empty, QueryState } from "../../components/States";
import { AdminFrame, NotAllowed } from "./AdminFrame";
import { useCategories } from "./api";
import { categoryBlockers, nameTaken } from "./problems";
import { PropertyEditor } from "./PropertyEditor";
import { buildTree, flatten, pathName, reorder, siblingsOf, subtreeIds, type Category } from "./tree";

export default function CategoriesPage() {
  const { t } = useTranslation("catalogAdmin");
  const canRead = useCan("materials:read");
  const canWrite = useCan("materials:write");
  const categories = useCategories();
  const [params, setParams] = useSearchParams();
  const selectedId = params.get("category");
  // Chosen in the tree, the category's details take the focus (on a phone they are below it).
  const [focusDetail, setFocusDetail] = useState(false);
  const select = (id: string | null, focus = false) => {
    setFocusDetail(focus);
    setParams(id ? { category: id } : {}, { replace: true });
  };

  if (!canRead) return <AdminFrame title={t("categories.title")}><NotAllowed /></AdminFrame>;
  return (
    <AdminFrame title={t("categories.title")}>
      <QueryState query={categories}>
        {(all) => {
          const selected = all.find((category) => category.id === selectedId) ?? null;
          return (
            <div className="categories-layout">
              <section className="stack" aria-labelledby="tree-heading">
                <h2 id="tree-heading">{t("categories.tree")}</h2>
                {all.length === 0 ? (
                  <Empty>{canWrite ? t("categories.empty") : t("categories.emptyReadOnly")}</Empty>
                ) : (
                  <CategoryTree categories={all} selectedId={selected?.id ?? null} onSelect={(id) => select(id, true)} canWrite={canWrite} />
                )}
                {canWrite && (
                  // A new category goes under the one chosen, unless the person picks another.
                  <CreateCategory key={selected?.id ?? "top"} categories={all} onCreated={(id) => select(id, true)}
                    defaultParent={selected?.id ?? null} />
                )}
              </section>
              <section className="stack" aria-labelledby="detail-heading">
                {selected ? (
                  <CategoryDetail key={selected.id} category={selected} categories={all} canWrite={canWrite} focus={focusDetail}
                    onDeleted={() => select(null)} />
                ) : (
                  <>
                    <h2 id="detail-heading" className="visually-hidden">
                      {t("categories.detail")}
                    </h2>
                    {all.length > 0 && <Empty>{t("categories.pick")}</Empty>}
                  </>
                )}
              </section>
            </div>
          );
        }}
      </QueryState>
    </AdminFrame>
  );
}

function useInvalidateCategories() {
  const client = useQueryClient();
  return () => client.invalidateQueries({ queryKey: ["categories"] });
}

function ParentOptions({ categories, exclude }: { categories: Category[]; exclude?: Set<string> }) {
  const { t } = useTranslation("catalogAdmin");
  return (
    <>
      <option value="">{t("categories.topLevel")}</option>
      {flatten(buildTree(categories))
        .filter((node) => !exclude?.has(node.category.id))
        .map((node) => (
          <option key={node.category.id} value={node.category.id}>
            {pathName(categories, node.category.id)}
          </option>
        ))}
    </>
  );
}

function CreateCategory({
  categories,
  defaultParent,
  onCreated,
}: {
  categories: Category[];
  defaultParent: string | null;
  onCreated: (id: string) => void;
}) {
  const { t } = useTranslation("catalogAdmin");
  const invalidate = useInvalidateCategories();
  const [name, setName] = useState("");
  const [parent, setParent] = useState<string>(defaultParent ?? "");
  const create = useMutation({
    mutationFn: async () =>
      unwrap(await api.POST("/api/v1/categories", { body: { name: name.trim(), description: "", parent_id: parent || null } })),
    onSuccess: async (category) => {
      setName("");
      await invalidate();
      onCreated(category.id);
    },
  });
  const { fields, message } = formErrors(nameTaken(create.error) ? null : create.error);
  const nameError = nameTaken(create.error) ? t("categories.nameTaken") : fields.name;
  function submit(event: FormEvent) {
    event.preventDefault();
    create.mutate();
  }
  return (
    <form className="card stack" onSubmit={submit} noValidate aria-labelledby="create-heading">
      <h3 id="create-heading">{t("categories.new")}</h3>
      <Field label={t("categories.name")} value={name} required maxLength={200} onChange={(event) => setName(event.target.value)} error={nameError} />
      <SelectField label={t("categories.parent")} value={parent} onChange={(event) => setParent(event.target.value)} error={fields.parent_id}>
        <ParentOptions categories={categories} />
      </SelectField>
      <FormProblem message={message} />
      <button type="submit" className="primary" disabled={create.isPending || !name.trim()}>
        {t("categories.create")}
      </button>
    </form>
  );
}

function CategoryTree({
  categories,
  selectedId,
  onSelect,
  canWrite,
}: {
  categories: Category[];
  selectedId: string | null;
  onSelect: (id: string) => void;
  canWrite: boolean;
}) {
  const { t } = useTranslation("catalogAdmin");
  const invalidate = useInvalidateCategories();
  const move = useMutation({
    mutationFn: async ({ category, by }: { category: Category; by: number }) => {
      for (const change of reorder(categories, category, by)) {
        unwrap(
          await api.PATCH("/api/v1/categories/{category_id}", {
            params: { path: { category_id: change.id } },
            body: { position: change.position },
          }),
        );
      }
    },
    onSettled: () => invalidate(),
  });
  return (
    <>
      <ul className="category-tree">
        {flatten(buildTree(categories)).map(({ category, depth }) => {
          const siblings = siblingsOf(categories, category);
          const index = siblings.findIndex((sibling) => sibling.id === category.id);
          return (
            <li key={category.id} style={{ paddingInlineStart: `${depth * 1.25}rem` }}>
              <button
                type="button"
                className={`category-name${category.id === selectedId ? " selected" : ""}`}
                aria-current={category.id === selectedId ? "true" : undefined}
                onClick={() => onSelect(category.id)}
              >
                {category.name}
                {category.properties.length > 0 && (
                  <span className="muted"> · {t("categories.propertyCount", { count: category.properties.length })}</span>
                )}
              </button>
              {canWrite && (
                <span className="reorder">
                  <button
                    type="button"
                    className="link-button"
                    aria-label={t("categories.moveUp", { name: category.name })}
                    disabled={index <= 0 || move.isPending}
                    onClick={() => move.mutate({ category, by: -1 })}
                  >
                    ↑
                  </button>
                  <button
                    type="button"
                    className="link-button"
                    aria-label={t("categories.moveDown", { name: category.name })}
                    disabled={index >= siblings.length - 1 || move.isPending}
                    onClick={() => move.mutate({ category, by: 1 })}
                  >
                    ↓
                  </button>
                </span>
              )}
            </li>
          );
        })}
      </ul>
      {move.error && <FormProblem message={describe(move.error)} />}
    </>
  );
}

function CategoryDetail({
  category,
  categories,
  canWrite,
  focus,
  onDeleted,
}: {
  category: Category;
  categories: Category[];
  canWrite: boolean;
  focus: boolean;
  onDeleted: () => void;
}) {
  const { t } = useTranslation("catalogAdmin");
  const heading = useRef<HTMLHeadingElement>(null);
  useEffect(() => {
    if (focus) heading.current?.focus();
  }, [focus]);
  return (
    <>
      <h2 id="detail-heading" ref={heading} tabIndex={-1}>
        {pathName(categories, category.id)}
      </h2>
      {canWrite ? (
        <>
          <RenameCategory category={category} />
          <MoveCategory category={category} categories={categories} />
        </>
      ) : (
        category.description && <p>{category.description}</p>
      )}
      <PropertyEditor category={category} categories={categories} canWrite={canWrite} />
      {canWrite && <DeleteCategory category={category} onDeleted={onDeleted} />}
      {!canWrite && <p className="muted">{t("readOnly")}</p>}
    </>
  );
}

function RenameCategory({ category }: { category: Category }) {
  const { t } = useTranslation("catalogAdmin");
  const invalidate = useInvalidateCategories();
  const [name, setName] = useState(category.name);
  const [description, setDescription] = useState(category.description);
  const rename = useMutation({
    mutationFn: async () =>
      unwrap(
        await api.PATCH("/api/v1/categories/{category_id}", {
          params: { path: { category_id: category.id } },
          body: { name: name.trim(), description },
        }),
      ),
    onSuccess: () => invalidate(),
  });
  const { fields, message } = formErrors(nameTaken(rename.error) ? null : rename.error);
  const nameError = nameTaken(rename.error) ? t("categories.nameTaken") : fields.name;
  const changed = name.trim() !== category.name || description !== category.description;
  return (
    <form
      className="card stack"
      noValidate
      aria-labelledby="rename-heading"
      onSubmit={(event) => {
        event.preventDefault();
        rename.mutate();
      }}
    >
      <h3 id="rename-heading">{t("categories.nameAndDescription")}</h3>
      <Field label={t("categories.name")} value={name} required maxLength={200} onChange={(event) => setName(event.target.value)} error={nameError} />
      <TextAreaField label={t("categories.description")} value={description} maxLength={2000} rows={2}
        onChange={(event) => setDescription(event.target.value)} error={fields.description} />
      <FormProblem message={message} />
      <div className="row">
        <button type="submit" className="primary" disabled={rename.isPending || !changed || !name.trim()}>
          {t("categories.rename")}
        </button>
        <span role="status" aria-live="polite" className="muted">
          {rename.isSuccess && !changed ? t("saved") : ""}
        </span>
      </div>
    </form>
  );
}

function MoveCategory({ category, categories }: { category: Category; categories: Category[] }) {
  const { t } = useTranslation("catalogAdmin");
  const invalidate = useInvalidateCategories();
  const [parent, setParent] = useState(category.parent_id ?? "");
  const move = useMutation({
    mutationFn: async () =>
      unwrap(
        await api.PATCH("/api/v1/categories/{category_id}", {
          params: { path: { category_id: category.id } },
          body: { parent_id: parent || null },
        }),
      ),
    onSuccess: () => invalidate(),
  });
  const { fields, message } = formErrors(nameTaken(move.error) ? null : move.error);
  const parentError = nameTaken(move.error) ? t("categories.nameTakenThere") : fields.parent_id;
  return (
    <form
      className="card stack"
      noValidate
      aria-labelledby="move-heading"
      onSubmit={(event) => {
        event.preventDefault();
        move.mutate();
      }}
    >
      <h3 id="move-heading">{t("categories.place")}</h3>
      <SelectField label={t("categories.moveUnder")} value={parent} onChange={(event) => setParent(event.target.value)} error={parentError}>
        <ParentOptions categories={categories} exclude={subtreeIds(categories, category.id)} />
      </SelectField>
      <FormProblem message={message} />
      <div className="row">
        <button type="submit" disabled={move.isPending || parent === (category.parent_id ?? "")}>
          {t("categories.move")}
        </button>
      </div>
    </form>
  );
}

function DeleteCategory({ category, onDeleted }: { category: Category; onDeleted: () => void }) {
  const { t } = useTranslation("catalogAdmin");
  const invalidate = useInvalidateCategories();
  const [open, setOpen] = useState(false);
  const remove = useMutation({
    mutationFn: async (purge: boolean) =>
      unwrap(
        await api.DELETE("/api/v1/categories/{category_id}", {
          params: { path: { category_id: category.id }, query: { purge_deleted_materials: purge } },
        }),
      ),
    onSuccess: async () => {
      setOpen(false);
      onDeleted();
      await invalidate();
    },
  });
  const blockers = categoryBlockers(remove.error);
  // Only deleted materials hold it: purging them for good lets it go.
  const onlyDeleted = blockers !== null && blockers.deleted > 0 && !blockers.subcategories && blockers.live === 0;
  const close = () => {
    setOpen(false);
    remove.reset();
  };
  return (
    <div className="card stack danger-zone">
      <h3>{t("categories.deleteTitle")}</h3>
      <p className="muted">{t("categories.deleteHint")}</p>
      <div className="row">
        <button type="button" className="danger" onClick={() => setOpen(true)}>
          {t("categories.delete")}
        </button>
      </div>
      <ConfirmDialog
        open={open}
        title={t("categories.deleteConfirmTitle", { name: category.name })}
        confirmLabel={blockers ? t("categories.purgeAndDelete", { count: blockers.deleted }) : t("categories.delete")}
        pending={remove.isPending}
        // The blockers are listed below in place of the server's sentence.
        error={blockers ? null : remove.error}
        onConfirm={!blockers ? () => remove.mutate(false) : onlyDeleted ? () => remove.mutate(true) : undefined}
        onClose={close}
      >
        {blockers ? (
          <div role="alert" className="stack">
            <p>{t("categories.inUse")}</p>
            <ul>
              {blockers.subcategories && <li>{t("categories.blockedBySubcategories")}</li>}
              {blockers.live > 0 && <li>{t("categories.blockedByLive", { count: blockers.live })}</li>}
              {blockers.deleted > 0 && <li>{t("categories.blockedByDeleted", { count: blockers.deleted })}</li>}
            </ul>
          </div>
        ) : (
          !remove.error && <p>{t("categories.deleteConfirm")}</p>
        )}
      </ConfirmDialog>
    </div>
  );
}
