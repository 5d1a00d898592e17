// The models area's conversations with the API: versions, backbones, recognition settings.
import { useQueries, useQuery } from "@tanstack/react-query";

import { api, authedFetch, type Schemas } from "../../api/client";
import { ApiError, isProblem, unwrap } from "../../api/problem";
import { useCursorList } from "../../components/lists";

export type ModelVersion = Schemas["ModelVersionRead"];
export type Backbone = Schemas["ImageModelRead"];
export type TrainingOptions = Schemas["TrainingOptions"];
export type RecognitionSettings = Schemas["RecognitionSettingsRead"];

export const keys = {
  all: ["models"] as const,
  versions: ["models", "versions"] as const,
  version: (id: string) => ["models", "version", id] as const,
  backbones: ["models", "backbones"] as const,
  settings: ["models", "settings"] as const,
};

export function useVersions() {
  return useCursorList(keys.versions, async (cursor) =>
    unwrap(await api.GET("/api/v1/models", { params: { query: { cursor, limit: 50 } } })),
  );
}

function versionQuery(versionId: string) {
  return {
    queryKey: keys.version(versionId),
    queryFn: async () => unwrap(await api.GET("/api/v1/models/{version_id}", { params: { path: { version_id: versionId } } })),
  };
}

export function useVersion(versionId: string) {
  return useQuery({
    ...versionQuery(versionId),
    // A version in training changes on its own: look again until it has ended.
    refetchInterval: (query) => (query.state.data?.status === "training" ? 2000 : false),
  });
}

/** Several versions at once (those compared side by side). */
export function useVersionsNamed(versionIds: string[]) {
  return useQueries({ queries: versionIds.map(versionQuery) });
}

export function useBackbones() {
  return useCursorList(keys.backbones, async (cursor) =>
    unwrap(await api.GET("/api/v1/backbones", { params: { query: { cursor, limit: 200 } } })),
  );
}

export function useRecognitionSettings() {
  return useQuery({
    queryKey: keys.settings,
    queryFn: async () => unwrap(await api.GET("/api/v1/recognitions/settings")),
  });
}

export async function trainVersion(options: TrainingOptions): Promise<ModelVersion> {
  return unwrap(await api.POST("/api/v1/models", { body: options }));
}

export async function activateVersion(versionId: string): Promise<ModelVersion> {
  return unwrap(await api.POST("/api/v1/models/{version_id}/activate", { params: { path: { version_id: versionId } } }));
}

/** Uploads an ONNX backbone as multipart form data; a refusal throws the server's problem. */
export async function uploadBackbone(form: FormData): Promise<Backbone> {
  const answer = await authedFetch(new Request(new URL("/api/v1/backbones", window.location.origin), { method: "POST", body: form }));
  const body: unknown = await answer.json().catch(() => null);
  if (!answer.ok) {
    throw new ApiError(
      isProblem(body) ? body : { type: "about:blank", title: answer.statusText || "The server could not answer", status: answer.status },
    );
  }
  return body as Backbone;
}

export async function deleteBackbone(name: string): Promise<void> {
  unwrap(await api.DELETE("/api/v1/backbones/{name}", { params: { path: { name } } }));
}

export async function changeSettings(change: Schemas["RecognitionSettingsChange"]): Promise<RecognitionSettings> {
  return unwrap(await api.PATCH("/api/v1/recognitions/settings", { body: change }));
}

export type Experiment = Schemas["ExperimentRead"];
export type ExperimentCreate = Schemas["ExperimentCreate"];
export type ModelEvent = Schemas["ModelEventRead"];

export const experimentKeys = {
  all: ["models", "experiments"] as const,
  events: ["models", "events"] as const,
};

export function useExperiments() {
  return useQuery({
    queryKey: experimentKeys.all,
    queryFn: async () => unwrap(await api.GET("/api/v1/model-experiments", { params: { query: { limit: 20 } } })).items,
    // A running test's figures move with every recognition and feedback: look again now and then.
    refetchInterval: (query) => (query.state.data?.some((test) => test.status === "running") ? 10_000 : false),
  });
}

export function useModelEvents() {
  return useQuery({
    queryKey: experimentKeys.events,
    queryFn: async () => unwrap(await api.GET("/api/v1/model-events", { params: { query: { limit: 20 } } })).items,
  });
}

export async function startExperiment(body: ExperimentCreate): Promise<Experiment> {
  return unwrap(await api.POST("/api/v1/model-experiments", { body }));
}

export async function endExperiment(experimentId: string, how: "promote" | "stop" | "judge"): Promise<Experiment> {
  const path = { params: { path: { experiment_id: experimentId } } };
  if (how === "promote") return unwrap(await api.POST("/api/v1/model-experiments/{experiment_id}/promote", path));
  if (how === "stop") return unwrap(await api.POST("/api/v1/model-experiments/{experiment_id}/stop", path));
  return unwrap(await api.POST("/api/v1/model-experiments/{experiment_id}/judge", path));
}

export type DriftWindow = Schemas["DriftWindowRead"];

export const driftKeys = { all: ["models", "drift"] as const };

export function useDriftWindows() {
  return useQuery({
    queryKey: driftKeys.all,
    queryFn: async () => unwrap(await api.GET("/api/v1/model-drift", { params: { query: { limit: 50 } } })).items,
  });
}

export async function checkDrift(): Promise<Schemas["DriftCheckRead"]> {
  return unwrap(await api.POST("/api/v1/model-drift/check"));
}
