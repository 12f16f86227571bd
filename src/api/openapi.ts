/**
 * The OpenAPI 3.1 document, generated from the route declarations and their valibot schemas
 * with `@valibot/to-json-schema` (JSON Schema 2020-12, which OpenAPI 3.1 uses). There is no
 * hand-kept copy: a route or a field added to a schema appears here by construction.
 *
 * Request schemas are converted as *input* types (a query parameter documented as the string it
 * arrives as); shared response shapes become `components.schemas`. Validation steps JSON Schema
 * cannot express (a calendar check, a cursor check) are enforced at runtime and left out.
 *
 * @module
 */
import {
  type ConversionConfig,
  type JsonSchema,
  toJsonSchema,
  toJsonSchemaDefs,
} from "@valibot/to-json-schema";
import {
  ClaimedJobResponse,
  EventEnvelopeResponse,
  HistoryEntryResponse,
  JobResponse,
  ProblemResponse,
  RequestHeaders,
} from "./schemas.ts";
import type { AnySchema, Route } from "./_route.ts";
import { PROBLEM_CONTENT_TYPE } from "./problem.ts";

/** Shared shapes, emitted once under `components.schemas`. */
const COMPONENTS: Record<string, AnySchema> = {
  Job: JobResponse,
  ClaimedJob: ClaimedJobResponse,
  HistoryEntry: HistoryEntryResponse,
  EventEnvelope: EventEnvelopeResponse,
  Problem: ProblemResponse,
};

const CONFIG: ConversionConfig = {
  target: "draft-2020-12",
  typeMode: "input",
  errorMode: "ignore",
  definitions: COMPONENTS,
  overrideRef: ({ referenceId }) => `#/components/schemas/${referenceId}`,
  // schemas.ts text(): its length check counts code points, its metadata carries the bound
  overrideAction: ({ valibotAction, jsonSchema }) => {
    const maxLength = valibotAction.type === "metadata"
      ? (valibotAction as { metadata?: { maxLength?: unknown } }).metadata?.maxLength
      : undefined;
    return typeof maxLength === "number" ? { ...jsonSchema, maxLength } : undefined;
  },
};

const ERROR_TITLES: Readonly<Record<number, string>> = {
  400: "validation_failed (with issues; reason invalid_dependency for JE005)",
  404: "not_found",
  409: "invalid_transition (with from, to), lease_mismatch, sealed_mode, " +
    "idempotency_conflict or dependencies_pending",
  413: "payload_too_large",
  415: "unsupported_media_type",
  503: "database_unavailable (Retry-After), or migrations_pending from /readyz",
};

/** Converts one schema, without the `$schema` / `$defs` members (they live in components). */
export function schemaOf(schema: AnySchema): JsonSchema {
  const { $schema: _schema, $defs: _defs, ...rest } = toJsonSchema(schema, CONFIG);
  return rest;
}

interface Parameter {
  name: string;
  in: "path" | "query" | "header";
  required: boolean;
  description?: string;
  schema: JsonSchema;
}

function entriesOf(schema: AnySchema | undefined): Array<[string, AnySchema]> {
  const entries = (schema as unknown as { entries?: Record<string, AnySchema> } | undefined)
    ?.entries;
  return entries ? Object.entries(entries) : [];
}

function isOptional(schema: AnySchema): boolean {
  return schema.type === "optional" || schema.type === "nullish";
}

function parameters(where: Parameter["in"], schema: AnySchema | undefined): Parameter[] {
  return entriesOf(schema).map(([name, entry]) => {
    const json = schemaOf(entry);
    const { description, ...rest } = json as JsonSchema & { description?: string };
    return {
      name: where === "header" ? headerName(name) : name,
      in: where,
      required: where === "path" || !isOptional(entry),
      ...(description ? { description } : {}),
      schema: rest,
    };
  });
}

/** Header names as the SPEC spells them (HTTP header names are case-insensitive). */
const HEADER_NAMES: Readonly<Record<string, string>> = {
  "x-tenant-id": "X-Tenant-Id",
  "x-actor": "X-Actor",
  "last-event-id": "Last-Event-ID",
};

function headerName(name: string): string {
  return HEADER_NAMES[name] ??
    name.split("-").map((part) => part.charAt(0).toUpperCase() + part.slice(1)).join("-");
}

function openApiPath(path: string): string {
  return path.replace(/:([A-Za-z_][A-Za-z0-9_]*)/g, "{$1}");
}

function operation(route: Route): Record<string, unknown> {
  const params = [
    ...parameters("path", route.params),
    ...parameters("query", route.query),
    ...(route.tenant ? parameters("header", RequestHeaders) : []),
    ...parameters("header", route.headers),
  ];
  const responses: Record<string, unknown> = {};
  for (const response of route.responses) {
    const contentType = response.contentType ?? "application/json";
    responses[String(response.status)] = {
      description: response.description,
      content: {
        [contentType]: {
          schema: response.schema
            ? schemaOf(response.schema)
            : { type: contentType === "application/json" ? "object" : "string" },
        },
      },
    };
  }
  for (const status of route.errors) {
    responses[String(status)] = {
      description: ERROR_TITLES[status] ?? "Error",
      content: { [PROBLEM_CONTENT_TYPE]: { schema: { $ref: "#/components/schemas/Problem" } } },
    };
  }
  return {
    operationId: route.operationId,
    summary: route.summary,
    ...(route.description ? { description: route.description } : {}),
    tags: [route.tag],
    ...(params.length ? { parameters: params } : {}),
    ...(route.body
      ? {
        requestBody: {
          required: !route.bodyOptional,
          content: { "application/json": { schema: schemaOf(route.body) } },
        },
      }
      : {}),
    responses,
  };
}

/** Builds the OpenAPI 3.1 document of `routes`. */
export function buildOpenApiDocument(
  routes: readonly Route[],
  options: { version: string },
): Record<string, unknown> {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const route of routes) {
    const path = openApiPath(route.path);
    (paths[path] ??= {})[route.method.toLowerCase()] = operation(route);
  }
  const schemas: Record<string, JsonSchema> = {};
  for (const [name, schema] of Object.entries(toJsonSchemaDefs(COMPONENTS, CONFIG))) {
    const { $schema: _schema, ...rest } = schema as JsonSchema;
    schemas[name] = rest;
  }
  return {
    openapi: "3.1.0",
    info: {
      title: "jobengine",
      version: options.version,
      description: "Job lifecycle engine. JSON in and out; errors are application/problem+json " +
        "(RFC 9457) with a stable `code`. `X-Tenant-Id` (default `default`) scopes every job " +
        "route; `X-Actor` is recorded in history and events.",
    },
    jsonSchemaDialect: "https://json-schema.org/draft/2020-12/schema",
    tags: [
      { name: "jobs" },
      { name: "lifecycle" },
      { name: "workflows" },
      { name: "events" },
      { name: "system" },
    ],
    paths,
    components: { schemas },
  };
}
