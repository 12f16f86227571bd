/**
 * Loads job handlers from a module: its `default` or `handlers` export, an object of functions.
 * Shared by the engine (`JOBENGINE_HANDLERS`) and the CLI (`jobengine worker <module>`).
 *
 * @module
 */
import { resolve } from "node:path";
import { pathToFileURL } from "node:url";
import type { JobHandlers } from "./worker.ts";

/** A handlers module that cannot be loaded or holds no valid handlers. */
export class HandlersModuleError extends Error {
  /** Creates the error. */
  constructor(message: string, options: { cause?: unknown } = {}) {
    super(message, options);
    this.name = "HandlersModuleError";
  }
}

/**
 * The URL a handlers module is imported from: `path` itself when it is a URL (`file:`,
 * `https:`, `npm:`, ...), else the file path resolved against `cwd` (a Windows drive letter is
 * a path, not a scheme).
 */
export function handlersModuleUrl(path: string, cwd = "."): string {
  return /^[a-z][a-z0-9+.-]*:/i.test(path) && !/^[a-z]:[\\/]/i.test(path)
    ? path
    : pathToFileURL(resolve(cwd, path)).href;
}

/** Imports `path` (a URL, or a file path resolved against `cwd`) and returns its handlers. */
export async function loadHandlers(path: string, cwd = "."): Promise<JobHandlers> {
  const url = handlersModuleUrl(path, cwd);
  let module: Record<string, unknown>;
  try {
    module = await import(url);
  } catch (error) {
    throw new HandlersModuleError(
      `Cannot load handlers from ${path}: ${(error as Error).message}`,
      { cause: error },
    );
  }
  const handlers = module.default ?? module.handlers;
  if (!handlers || typeof handlers !== "object") {
    throw new HandlersModuleError(
      `Cannot load handlers from ${path}: export an object of handlers as default or as \`handlers\``,
    );
  }
  const entries = Object.entries(handlers as Record<string, unknown>);
  const bad = entries.find(([, fn]) => typeof fn !== "function");
  if (entries.length === 0 || bad) {
    throw new HandlersModuleError(
      bad
        ? `Invalid handler "${bad[0]}" in ${path}: expected a function (job, ctx) => Promise`
        : `No handlers in ${path}`,
    );
  }
  return handlers as JobHandlers;
}
