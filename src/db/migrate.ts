/**
 * The migration runner: brings a database to the schema embedded in this build.
 *
 * Two kinds of SQL file, both embedded by `deno task gen` into `_sql.generated.ts` so nothing is
 * read from disk at runtime:
 *
 * - versioned, `sql/migrations/NNNNNN_name.sql`: applied once each, in order, never edited
 *   afterwards (an edit is refused with {@linkcode MigrationChecksumError});
 * - repeatable, `sql/repeatable/NNN_name.sql` (functions, triggers, `create or replace`):
 *   applied after the versioned ones, in file name order, whenever their checksum changes.
 *
 * Each file runs in its own transaction together with its `jobengine.schema_migrations` row,
 * under a transaction-level advisory lock, so any number of processes may migrate the same
 * database at once: each file is applied exactly once. A file therefore must not contain
 * statements that refuse to run in a transaction (`create index concurrently`, `vacuum`).
 *
 * @module
 */

import { DatabaseUnavailableError, JobEngineError } from "../errors.ts";
import type { Database, Queryable } from "./port.ts";
import { MIGRATIONS } from "./_sql.generated.ts";

/** One embedded SQL file. */
export interface Migration {
  /** The file name, such as `000001_schema.sql` or `010_job_transitions.sql`. */
  readonly name: string;
  /** `versioned` (applied once) or `repeatable` (re-applied when its checksum changes). */
  readonly kind: "versioned" | "repeatable";
  /** The file text. */
  readonly sql: string;
  /** The SHA-256 of the file text, as lowercase hex ({@linkcode sha256Hex}). */
  readonly checksum: string;
}

/** Options of {@linkcode migrate}. */
export interface MigrateOptions {
  /** The files to apply (default: the embedded {@linkcode MIGRATIONS}). */
  migrations?: readonly Migration[];
}

/** What {@linkcode migrate} did. */
export interface MigrateResult {
  /** The names of the files applied by this call, in the order they ran. */
  applied: string[];
  /** How many files were already up to date (applied earlier, or by a concurrent process). */
  skipped: number;
}

/** The key of the advisory lock held while a migration step runs (`"jobmig"` in ASCII). */
export const MIGRATION_LOCK_KEY = 0x6a6f626d6967;

/** An applied versioned file was edited afterwards. */
export class MigrationChecksumError extends JobEngineError {
  /** The file name. */
  readonly migration: string;
  /** Creates the error for `migration`, whose recorded checksum differs from the current one. */
  constructor(migration: string, recorded: string, current: string) {
    super(
      "migration_checksum_mismatch",
      `Migration ${migration} was edited after it was applied: ` +
        `checksum ${current} (now) != ${recorded} (applied)`,
      { details: { migration, recorded, current } },
    );
    this.name = "MigrationChecksumError";
    this.migration = migration;
  }
}

/** A migration list that cannot be applied, or a file whose SQL failed. */
export class MigrationError extends JobEngineError {
  /** The file name, when one file is at fault. */
  readonly migration: string | undefined;
  /** Creates the error. */
  constructor(message: string, options: { migration?: string; cause?: unknown } = {}) {
    super("migration_failed", message, {
      details: { migration: options.migration },
      cause: options.cause,
    });
    this.name = "MigrationError";
    this.migration = options.migration;
  }
}

/** Returns the SHA-256 of `text` (UTF-8) as lowercase hex. */
export async function sha256Hex(text: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

const VERSIONED_NAME = /^(\d{6})_[a-z0-9_]+\.sql$/;
const REPEATABLE_NAME = /^(\d{3})_[a-z0-9_]+\.sql$/;

/** The `schema_migrations` key of a file: the number of a versioned one, `R__<stem>` otherwise. */
function versionOf(migration: Migration): string {
  if (migration.kind === "versioned") {
    const match = VERSIONED_NAME.exec(migration.name);
    if (!match) {
      throw new MigrationError(
        `Invalid versioned migration name "${migration.name}": expected NNNNNN_name.sql`,
        { migration: migration.name },
      );
    }
    return match[1]!;
  }
  if (!REPEATABLE_NAME.test(migration.name)) {
    throw new MigrationError(
      `Invalid repeatable migration name "${migration.name}": expected NNN_name.sql`,
      { migration: migration.name },
    );
  }
  return `R__${migration.name.replace(/\.sql$/, "")}`;
}

interface Planned {
  migration: Migration;
  version: string;
}

/** Orders the files (versioned first, each kind by name) and refuses duplicate versions. */
function plan(migrations: readonly Migration[]): Planned[] {
  const byName = (a: Migration, b: Migration) => a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
  const ordered = [
    ...migrations.filter((m) => m.kind === "versioned").sort(byName),
    ...migrations.filter((m) => m.kind === "repeatable").sort(byName),
  ];
  const seen = new Map<string, string>();
  return ordered.map((migration) => {
    const version = versionOf(migration);
    const other = seen.get(version);
    if (other !== undefined) {
      throw new MigrationError(
        `Migrations ${other} and ${migration.name} have the same version ${version}`,
        { migration: migration.name },
      );
    }
    seen.set(version, migration.name);
    return { migration, version };
  });
}

/** The bookkeeping table's definition: the first versioned file, `000000_bootstrap.sql`. */
const BOOTSTRAP_SQL = (() => {
  const bootstrap = MIGRATIONS.find((m) => m.name === "000000_bootstrap.sql");
  if (!bootstrap) throw new Error("000000_bootstrap.sql is missing from the embedded migrations");
  return bootstrap.sql;
})();

interface AppliedRow {
  [key: string]: unknown;
  version: string;
  checksum: string;
}

/** Takes the lock, creates the bookkeeping table if needed, and reads what is applied. */
async function lockAndRead(tx: Queryable): Promise<Map<string, string>> {
  await tx.query("select pg_advisory_xact_lock($1::int8)", [MIGRATION_LOCK_KEY]);
  const [exists] = await tx.query<{ table: string | null }>(
    "select to_regclass('jobengine.schema_migrations')::text as table",
  );
  if (!exists?.table) await tx.query(BOOTSTRAP_SQL);
  const rows = await tx.query<AppliedRow>(
    "select version, checksum from jobengine.schema_migrations",
  );
  return new Map(rows.map((row) => [row.version, row.checksum]));
}

/**
 * Returns the next file to apply, after refusing any edited versioned file. A file this run
 * already applied is not applied again, so two builds with different repeatables that migrate
 * at once cannot take turns forever.
 */
function nextPending(
  steps: readonly Planned[],
  applied: Map<string, string>,
  done: ReadonlySet<string>,
): Planned | undefined {
  for (const { migration, version } of steps) {
    const recorded = applied.get(version);
    if (
      migration.kind === "versioned" && recorded !== undefined && recorded !== migration.checksum
    ) {
      throw new MigrationChecksumError(migration.name, recorded, migration.checksum);
    }
  }
  return steps.find(({ migration, version }) =>
    !done.has(version) && applied.get(version) !== migration.checksum
  );
}

async function apply(tx: Queryable, step: Planned): Promise<void> {
  const { migration, version } = step;
  try {
    await tx.query(migration.sql);
  } catch (error) {
    if (error instanceof DatabaseUnavailableError) throw error;
    const reason = error instanceof Error ? error.message : String(error);
    throw new MigrationError(`Migration ${migration.name} failed: ${reason}`, {
      migration: migration.name,
      cause: error,
    });
  }
  await tx.query(
    `insert into jobengine.schema_migrations (version, name, kind, checksum)
     values ($1, $2, $3, $4)
     on conflict (version) do update
       set name = excluded.name, checksum = excluded.checksum, applied_at = now()`,
    [version, migration.name, migration.kind, migration.checksum],
  );
}

/**
 * Applies every pending file of `options.migrations` (default: the embedded
 * {@linkcode MIGRATIONS}) to `db`. Safe to call again (a no-op when up to date) and from several
 * processes at once. Throws {@linkcode MigrationChecksumError} when an applied versioned file
 * was edited, and {@linkcode MigrationError} when a file fails (that file is rolled back; files
 * applied before it stay applied).
 */
export async function migrate(db: Database, options: MigrateOptions = {}): Promise<MigrateResult> {
  const steps = plan(options.migrations ?? MIGRATIONS);
  const applied: string[] = [];
  const done = new Set<string>();
  while (true) {
    const step = await db.transaction(async (tx) => {
      const next = nextPending(steps, await lockAndRead(tx), done);
      if (next) await apply(tx, next);
      return next;
    });
    if (!step) break;
    done.add(step.version);
    applied.push(step.migration.name);
  }
  return { applied, skipped: steps.length - applied.length };
}

export { MIGRATIONS };
