// The projects API as queries and mutations, with the keys the screens invalidate.
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";

import { api, authedFetch, type Schemas } from "../../api/client";
import { ApiError, isProblem, unwrap } from "../../api/problem";
import { useCan } from "../../app/me";
import { useCursorList } from "../../components/lists";

export type Project = Schemas["ProjectRead"];
export type ProjectMaterial = Schemas["ProjectMaterialRead"];
export type Recognition = Schemas["RecognitionRead"];
export type Team = Schemas["TeamRead"];
export type ProjectStatus = Project["status"];

export const keys = {
  all: ["projects"] as const,
  list: (status: ProjectStatus, q: string) => ["projects", "list", status, q] as const,
  one: (id: string) => ["projects", "one", id] as const,
  materials: (id: string) => ["projects", "materials", id] as const,
  recognitions: (id: string) => ["projects", "recognitions", id] as const,
};

export function useProjects(status: ProjectStatus, q: string) {
  return useCursorList(keys.list(status, q), async (cursor) =>
    unwrap(await api.GET("/api/v1/projects", { params: { query: { status, q: q || null, cursor, limit: 50 } } })),
  );
}

export function useProject(projectId: string) {
  return useQuery({
    queryKey: keys.one(projectId),
    queryFn: async () => unwrap(await api.GET("/api/v1/projects/{project_id}", { params: { path: { project_id: projectId } } })),
  });
}

export function useProjectMaterials(projectId: string) {
  return useCursorList(keys.materials(projectId), async (cursor) =>
    unwrap(
      await api.GET("/api/v1/projects/{project_id}/materials", {
        params: { path: { project_id: projectId }, query: { cursor, limit: 100 } },
      }),
    ),
  );
}

export function useProjectRecognitions(projectId: string) {
  return useCursorList(keys.recognitions(projectId), async (cursor) =>
    unwrap(await api.GET("/api/v1/recognitions", { params: { query: { project_id: projectId, cursor, limit: 50 } } })),
  );
}

/** The organization's teams, for sharing; only asked of people who may see them. */
export function useTeams() {
  const canSee = useCan("members:read");
  const teams = useQuery({
    queryKey: ["teams", "all"],
    queryFn: async () => unwrap(await api.GET("/api/v1/teams", { params: { query: { limit: 200 } } })),
    enabled: canSee,
  });
  return { ...teams, canSee };
}

/** A material's first ready photo, for a thumbnail. */
export function useMaterialThumbnail(materialId: string, enabled = true) {
  return useQuery({
    queryKey: ["materials", materialId, "images", "first"],
    queryFn: async () => {
      const page = unwrap(
        await api.GET("/api/v1/materials/{material_id}/images", {
          params: { path: { material_id: materialId }, query: { limit: 20 } },
        }),
      );
      const ready = page.items.filter((image) => image.status === "ready");
      return (ready.find((image) => image.is_primary) ?? ready[0])?.urls.thumbnail ?? null;
    },
    enabled,
    staleTime: 60_000,
  });
}

/**
 * Every change to a project, its creation too, refreshes what shows projects: its page, the
 * lists, the totals, and the choice of a project on the recognition screen (which, still fresh,
 * would otherwise not offer a project made a moment ago). Only the queries on screen refetch.
 */
export function useProjectMutation<TVariables, TResult>(mutate: (variables: TVariables) => Promise<TResult>) {
  const client = useQueryClient();
  return useMutation({
    mutationFn: mutate,
    onSuccess: () => client.invalidateQueries({ queryKey: keys.all }),
  });
}

/** Downloads the chosen materials as a file, named as the server names it. */
export async function downloadExport(project: Project, format: "csv" | "json"): Promise<void> {
  const url = new URL(`/api/v1/projects/${project.id}/export`, window.location.origin);
  url.searchParams.set("format", format);
  const answer = await authedFetch(new Request(url));
  if (!answer.ok) {
    const body: unknown = await answer.json().catch(() => null);
    throw new ApiError(
      isProblem(body) ? body : { type: "about:blank", title: answer.statusText || "The export failed", status: answer.status },
    );
  }
  const blob = await answer.blob();
  const disposition = answer.headers.get("Content-Disposition") ?? "";
  const name = /filename="([^"]+)"/.exec(disposition)?.[1] ?? `${fileSafe(project.name)}.${format}`;
  const link = document.createElement("a");
  link.href = URL.createObjectURL(blob);
  link.download = name;
  document.body.append(link);
  link.click();
  link.remove();
  window.setTimeout(() => URL.revokeObjectURL(link.href), 10_000);
}

function fileSafe(name: string): string {
  return name.replace(/[^\p{L}\p{N}._-]+/gu, "-").replace(/^-+|-+$/g, "") || "project";
}
