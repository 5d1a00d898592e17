// RFC 9457 problem details, as the API answers every error, turned into plain sentences.
export interface FieldError {
  loc: (string | number)[];
  msg: string;
  type?: string;
}

export interface Problem {
  type: string;
  title: string;
  status: number;
  detail?: string | null;
  errors?: FieldError[] | null;
  [extension: string]: unknown;
}

export class ApiError extends Error {
  constructor(readonly problem: Problem) {
    super(problem.detail ?? problem.title);
    this.name = "ApiError";
  }

  get status(): number {
    return this.problem.status;
  }

  /** The problem's short type name (`mfa-required`), whatever URI prefix it carries. */
  get kind(): string {
    return this.problem.type.split("/").pop() ?? this.problem.type;
  }
}

export function isProblem(value: unknown): value is Problem {
  return (
    typeof value === "object" &&
    value !== null &&
    typeof (value as Problem).title === "string" &&
    typeof (value as Problem).status === "number"
  );
}

/** The data of an openapi-fetch answer, or an ApiError with the problem it carried. */
export function unwrap<T>(answer: { data?: T; error?: unknown; response: Response }): T {
  if (answer.error !== undefined || !answer.response.ok) {
    const error = answer.error;
    throw new ApiError(
      isProblem(error)
        ? error
        : {
            type: "about:blank",
            title: answer.response.statusText || "The server could not answer",
            status: answer.response.status,
          },
    );
  }
  return answer.data as T;
}

/** The field an error is about (`body.name` -> `name`), or null for the whole form. */
export function fieldOf(error: FieldError): string | null {
  const path = error.loc.filter((part) => part !== "body" && part !== "query" && part !== "path");
  return path.length ? path.join(".") : null;
}

/** Errors per field name, and the rest for the form as a whole. */
export function splitErrors(problem: Problem): { fields: Record<string, string>; general: string[] } {
  const fields: Record<string, string> = {};
  const general: string[] = [];
  for (const error of problem.errors ?? []) {
    const field = fieldOf(error);
    if (field && !(field in fields)) fields[field] = sentence(error.msg);
    else if (!field) general.push(sentence(error.msg));
  }
  return { fields, general };
}

function sentence(text: string): string {
  const trimmed = text.replace(/^Value error, /, "").trim();
  const capital = trimmed.charAt(0).toUpperCase() + trimmed.slice(1);
  return /[.!?]$/.test(capital) ? capital : `${capital}.`;
}

/** One sentence for a person: the detail when the server gave one, else the title. */
export function describe(error: unknown): string {
  if (error instanceof ApiError) {
    const { detail, title } = error.problem;
    return sentence(detail || title);
  }
  if (error instanceof TypeError) return "The server could not be reached. Check the connection and try again.";
  return error instanceof Error ? sentence(error.message) : "Something went wrong.";
}
