/**
 * One process at a time on an embedded (PGlite) data directory. PGlite has no lock of its own:
 * a second process opening the same directory works on its own copy of the files and loses
 * what it writes. The engine and the CLI hold `<dataDir>/jobengine.lock` with an exclusive OS
 * file lock while they use the directory; the operating system releases it when the process
 * ends, however it ends, so a crash leaves no stale lock behind.
 *
 * @module
 */
import { join } from "node:path";
import { DataDirectoryInUseError } from "../errors.ts";

/** The lock file inside a data directory. */
export const LOCK_FILE = "jobengine.lock";

/** A held data directory. */
export interface DataDirLock {
  /** Releases the lock (idempotent). */
  release(): Promise<void>;
}

/**
 * Takes the data directory `dataDir` (created when missing) for this process; throws
 * {@linkcode DataDirectoryInUseError} at once when another process holds it.
 */
export async function lockDataDir(dataDir: string): Promise<DataDirLock> {
  await Deno.mkdir(dataDir, { recursive: true });
  const file = await Deno.open(join(dataDir, LOCK_FILE), { create: true, write: true });
  let locked = false;
  try {
    locked = await file.tryLock(true);
  } finally {
    if (!locked) file.close();
  }
  if (!locked) throw new DataDirectoryInUseError(dataDir);
  let released = false;
  return {
    async release() {
      if (released) return;
      released = true;
      try {
        await file.unlock();
      } finally {
        file.close();
      }
    },
  };
}
