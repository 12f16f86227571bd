/**
 * `POST /api/v1/workflows`: several jobs created atomically, referring to each other by `ref`
 * (`create_workflow`). A cycle or an unknown reference is refused with 400
 * `invalid_dependency` and nothing is written. The response lists the jobs in the order sent,
 * plus `refs`: each ref's job id.
 *
 * @module
 */
import { publicJob } from "../../job/job.ts";
import { CreateWorkflowBody, WorkflowResponse } from "../schemas.ts";
import { type ApiDeps, defineRoute, type Route } from "../_route.ts";
import { API_PREFIX } from "./jobs.ts";

/** The workflow routes. */
export function workflowRoutes(deps: ApiDeps): Route[] {
  return [
    defineRoute({
      method: "POST",
      path: `${API_PREFIX}/workflows`,
      operationId: "createWorkflow",
      summary: "Create several jobs at once; dependsOn names refs (or ids of existing jobs)",
      tag: "workflows",
      tenant: true,
      body: CreateWorkflowBody,
      responses: [{ status: 201, description: "The created jobs", schema: WorkflowResponse }],
      errors: [400, 413, 415, 503],
      handler: async (c, { body, tenantId, actor }) => {
        const jobs = await deps.store.createWorkflow(body!.jobs, {
          tenantId,
          correlationId: body!.correlationId,
          actor,
        });
        // create_workflow returns the jobs in the order they were sent
        const refs = Object.fromEntries(
          body!.jobs.map((spec, i) => [spec.ref, jobs[i]?.id ?? null]),
        );
        return c.json({ jobs: jobs.map(publicJob), refs }, 201);
      },
    }),
  ];
}
