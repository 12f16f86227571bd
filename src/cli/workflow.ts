/**
 * `jobengine workflow <file.json>`: creates several jobs at once, atomically; they refer to each
 * other by `ref`.
 *
 * @module
 */
import type { WorkflowJobInput } from "../job/job_store.ts";
import { colorStatus, palette, table } from "./_format.ts";
import { type Command, expectPositionals, UsageError } from "./_shared.ts";
import { parseJsonArgument, readTextArgument } from "./submit.ts";

const USAGE = "workflow <file.json>";

/** The `workflow` command. */
export const workflowCommand: Command = {
  name: "workflow",
  usage: USAGE,
  summary: "Create a workflow (jobs referring to each other by ref) from a JSON file",
  help: [
    'The file holds { "jobs": [...], "correlationId"?: "..." } or just the array. Each job:',
    '{ "ref": "a", "type": "t", "payload"?: {}, "dependsOn"?: ["ref or job id"], "priority"?,',
    '  "maxRetries"?, "retryPolicy"?, "notBefore"?, "requiresNetwork"? }.',
    "A cycle or an unknown ref is refused (exit 1) and nothing is written.",
  ].join("\n"),
  options: {},
  async run(ctx, positionals) {
    expectPositionals(positionals, 1, 1, USAGE);
    const file = positionals[0]!;
    const document = parseJsonArgument(await readTextArgument(ctx, file), file);
    const spec = Array.isArray(document) ? { jobs: document } : document as {
      jobs?: unknown;
      correlationId?: unknown;
    };
    if (!spec || typeof spec !== "object" || !Array.isArray(spec.jobs)) {
      throw new UsageError(`Invalid workflow in ${file}: expected { "jobs": [...] } or an array`);
    }
    const jobs = spec.jobs as WorkflowJobInput[];
    const store = await ctx.store();
    const created = await store.createWorkflow(jobs, {
      tenantId: ctx.flags.tenant,
      correlationId: typeof spec.correlationId === "string" ? spec.correlationId : undefined,
      actor: "cli",
    });
    if (ctx.flags.json) {
      ctx.printJson({ jobs: created });
      return;
    }
    const p = palette(ctx.color);
    const refById = new Map(created.map((job, i) => [job.id, jobs[i]?.ref ?? ""]));
    ctx.print(`Created a workflow of ${created.length} jobs`);
    ctx.print(table([
      ["REF", "ID", "TYPE", "STATUS", "DEPENDS ON"],
      ...created.map((job, i) => [
        jobs[i]?.ref ?? "",
        job.id,
        job.type,
        colorStatus(job.status, p),
        job.dependsOn.map((id) => refById.get(id) ?? id).sort().join(", "),
      ]),
    ], p));
  },
};
