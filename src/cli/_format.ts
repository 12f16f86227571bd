/**
 * Human output of the CLI: ANSI colours (off unless wanted), aligned tables, job summaries, the
 * history timeline, event lines and a progress bar.
 *
 * Imported only from `src/cli/`.
 *
 * @module
 */
import type { EventEnvelope, HistoryEntry, Job } from "../job/job.ts";

/** Colours by name; each wraps text in an ANSI sequence, or returns it unchanged when off. */
export interface Palette {
  bold(text: string): string;
  dim(text: string): string;
  red(text: string): string;
  green(text: string): string;
  yellow(text: string): string;
  blue(text: string): string;
  magenta(text: string): string;
  cyan(text: string): string;
}

function sgr(open: number, close: number, on: boolean): (text: string) => string {
  return on ? (text) => `\x1b[${open}m${text}\x1b[${close}m` : (text) => text;
}

/** Returns a palette; `on = false` gives plain text. */
export function palette(on: boolean): Palette {
  return {
    bold: sgr(1, 22, on),
    dim: sgr(2, 22, on),
    red: sgr(31, 39, on),
    green: sgr(32, 39, on),
    yellow: sgr(33, 39, on),
    blue: sgr(34, 39, on),
    magenta: sgr(35, 39, on),
    cyan: sgr(36, 39, on),
  };
}

// deno-lint-ignore no-control-regex -- strips the colour codes this module writes
const ANSI = /\x1b\[[0-9;]*m/g;

/** The printed width of `text` (colour codes do not count). */
export function visibleLength(text: string): number {
  return text.replace(ANSI, "").length;
}

/** Formats rows as columns separated by two spaces; the first row is the header. */
export function table(rows: readonly (readonly string[])[], p: Palette): string {
  const widths: number[] = [];
  for (const row of rows) {
    row.forEach((cell, i) => widths[i] = Math.max(widths[i] ?? 0, visibleLength(cell)));
  }
  return rows.map((row, r) =>
    row.map((cell, i) => {
      const text = r === 0 ? p.bold(cell) : cell;
      return i === row.length - 1 ? text : text + " ".repeat(widths[i]! - visibleLength(cell));
    }).join("  ").trimEnd()
  ).join("\n");
}

/** Colours a status the same way everywhere. */
export function colorStatus(status: string, p: Palette): string {
  switch (status) {
    case "completed":
      return p.green(status);
    case "failed":
      return p.red(status);
    case "running":
      return p.blue(status);
    case "scheduled":
      return p.cyan(status);
    case "cancelled":
      return p.magenta(status);
    default:
      return p.dim(status);
  }
}

/** Colours an event type. */
export function colorEventType(type: string, p: Palette): string {
  switch (type) {
    case "job.completed":
      return p.green(type);
    case "job.failed":
      return p.red(type);
    case "sealed.egress_blocked":
      return p.bold(p.red(type));
    case "job.started":
      return p.blue(type);
    case "job.scheduled":
      return p.cyan(type);
    case "job.retry_scheduled":
    case "job.blocked":
      return p.yellow(type);
    case "job.cancelled":
      return p.magenta(type);
    default:
      return p.dim(type);
  }
}

/** `2025-01-02T03:04:05.678Z` -> `2025-01-02 03:04:05.678Z`; empty for null. */
export function formatTime(iso: string | null | undefined): string {
  return iso ? iso.replace("T", " ") : "";
}

/** Compact JSON, cut to `max` characters. */
export function compactJson(value: unknown, max = 120): string {
  const text = JSON.stringify(value) ?? "null";
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

/** `attempt 1 of 4`. */
export function attempts(job: Job): string {
  return `${job.attempt}/${job.maxRetries + 1}`;
}

/** One line naming a job and its status (the answer of submit, cancel, retry, schedule). */
export function jobLine(job: Job, p: Palette): string {
  const extra = job.blockedReason ? p.yellow(` (blocked: ${job.blockedReason})`) : "";
  return `${job.id}  ${job.type}  ${colorStatus(job.status, p)}${extra}`;
}

/** `jobengine show`: the job's fields and its history as a timeline. */
export function jobDetails(job: Job, history: readonly HistoryEntry[], p: Palette): string {
  const lines: string[] = [];
  const terminal = job.terminal && job.status === "failed" ? " (terminal)" : "";
  lines.push(`${p.bold("Job")} ${job.id}  ${p.bold(job.type)}`);
  const fields: [string, string][] = [
    [
      "status",
      `${colorStatus(job.status, p)}${terminal}${
        job.statusReason ? p.dim(` (${job.statusReason})`) : ""
      }`,
    ],
    ["attempt", `${attempts(job)}`],
    ["tenant", job.tenantId],
    ["priority", String(job.priority)],
    ["created", formatTime(job.createdAt)],
    ["not before", formatTime(job.notBefore)],
  ];
  if (job.dependsOn.length > 0) fields.push(["depends on", job.dependsOn.join(", ")]);
  if (job.requiresNetwork) fields.push(["network", "required"]);
  if (job.blockedReason) fields.push(["blocked", p.yellow(job.blockedReason)]);
  if (job.leaseOwner) {
    fields.push(["lease", `${job.leaseOwner} until ${formatTime(job.leaseExpiresAt)}`]);
  }
  if (job.idempotencyKey) fields.push(["idempotency", job.idempotencyKey]);
  if (job.correlationId) fields.push(["correlation", job.correlationId]);
  fields.push(["payload", compactJson(job.payload, 200)]);
  if (job.result !== null) fields.push(["result", compactJson(job.result, 200)]);
  if (job.lastError) {
    const { code, message } = job.lastError as { code?: unknown; message?: unknown };
    fields.push(["last error", p.red(`${code ?? "error"}: ${message ?? ""}`)]);
  }
  const width = Math.max(...fields.map(([name]) => name.length));
  for (const [name, value] of fields) lines.push(`  ${p.dim(name.padEnd(width))}  ${value}`);
  lines.push("", p.bold("History"));
  const rows = history.map((h) => {
    const from = h.fromStatus ?? "(new)";
    const reason = h.reason ? ` ${h.reason}` : "";
    const by = h.actor ? p.dim(` by ${h.actor}`) : "";
    const error = h.toStatus === "failed"
      ? (h.details.error as { code?: unknown; message?: unknown } | undefined)
      : undefined;
    const why = error ? p.red(` ${error.code ?? "error"}: ${error.message ?? ""}`) : "";
    return [
      `  ${p.dim(formatTime(h.occurredAt))}`,
      `${from} → ${colorStatus(h.toStatus, p)}`,
      `#${h.attempt}${reason}${by}${why}`,
    ];
  });
  lines.push(table([["  TIME", "TRANSITION", "ATTEMPT / REASON"], ...rows], p));
  return lines.join("\n");
}

/** One line of `jobengine watch`. */
export function eventLine(event: EventEnvelope, p: Palette): string {
  const subject = event.subject.id ?? event.subject.kind;
  const tenant = event.tenantId === "default" ? "" : p.dim(` [${event.tenantId}]`);
  const actor = event.actor ? p.dim(` by ${event.actor}`) : "";
  const data = Object.keys(event.data).length > 0 ? ` ${p.dim(compactJson(event.data))}` : "";
  return `${p.dim(`#${event.sequence}`)} ${p.dim(formatTime(event.occurredAt))} ` +
    `${colorEventType(event.type.padEnd(21), p)} ${subject}${tenant}${actor}${data}`;
}

/** A progress bar redrawn in place on standard error. */
export interface ProgressBar {
  /** Sets how many items are done (redraws at most every 100 ms). */
  update(done: number): void;
  /** Draws the final state and ends the line. */
  finish(done: number): void;
}

/** Creates a progress bar for `total` items writing through `write`. */
export function progressBar(
  total: number,
  write: (text: string) => void,
  p: Palette,
  label = "submitting",
): ProgressBar {
  const started = performance.now();
  let last = 0;
  function draw(done: number): void {
    const width = 30;
    const ratio = total === 0 ? 1 : Math.min(1, done / total);
    const filled = Math.round(ratio * width);
    const seconds = (performance.now() - started) / 1000;
    const rate = seconds > 0 ? Math.round(done / seconds) : 0;
    write(
      `\r${label} [${p.green("#".repeat(filled))}${".".repeat(width - filled)}] ` +
        `${done}/${total} ${Math.round(ratio * 100)}% ${rate}/s`,
    );
  }
  return {
    update(done) {
      const now = performance.now();
      if (now - last < 100) return;
      last = now;
      draw(done);
    },
    finish(done) {
      draw(done);
      write("\n");
    },
  };
}
