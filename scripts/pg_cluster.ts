/**
 * A throwaway PostgreSQL cluster for tests, benchmarks and chaos runs.
 *
 * `startCluster()` runs `initdb` into a temporary directory, starts the server on a free
 * loopback port with trust authentication, and removes everything again on `stop()`, on process
 * exit, on SIGINT / SIGTERM and on an uncaught error. As root, the server runs as the `postgres`
 * system user (or a `jobengine` user created on demand), because PostgreSQL refuses to run as
 * root.
 *
 * @module
 */

/** Options for {@linkcode startCluster}. */
export interface ClusterOptions {
  /** Trade durability for speed: fsync, synchronous_commit and full_page_writes off. */
  fast?: boolean;
  /** Directory holding `initdb`, `pg_ctl`, `postgres` and `psql`; default {@linkcode findPgBin}. */
  binDir?: string;
  /** Extra `postgresql.conf` settings, e.g. `{ log_min_duration_statement: 0 }`. */
  settings?: Record<string, string | number | boolean>;
  /** Parent of the temporary directory; default `/tmp` as root, else the system default. */
  tmpDir?: string;
}

/** Options for {@linkcode Cluster.psql}. */
export interface PsqlOptions {
  /** Database to connect to; default `postgres`. */
  database?: string;
  /** Text fed to psql's standard input. */
  input?: string;
}

/** A running throwaway cluster. */
export interface Cluster {
  /** `postgres://postgres@127.0.0.1:PORT/postgres`. */
  readonly url: string;
  /** The loopback TCP port the server listens on. */
  readonly port: number;
  /** The data directory (`PGDATA`). */
  readonly dataDir: string;
  /** The directory of the PostgreSQL binaries in use. */
  readonly binDir: string;
  /** The server log file. */
  readonly logFile: string;
  /** The OS user that runs the server: the current user, or the system user when root. */
  readonly osUser: string;
  /** Returns the URL of another database on this cluster. */
  databaseUrl(name: string): string;
  /** Runs psql with `args`; resolves to its stdout, rejects with its stderr on failure. */
  psql(args: string[], options?: PsqlOptions): Promise<string>;
  /** Creates a database (optionally from a template) and resolves to its URL. */
  createDatabase(name: string, options?: { template?: string }): Promise<string>;
  /** Restarts the server (`pg_ctl restart -m fast`), keeping data and port. */
  restart(): Promise<void>;
  /** Stops the server and removes its directory; safe to call twice. */
  stop(): Promise<void>;
  /** Leaves the server running after this process exits (for debugging). */
  detach(): void;
}

/** Thrown when a PostgreSQL binary exits with a failure. */
export class PgCommandError extends Error {
  /** The exit code of the command. */
  readonly code: number;
  /** The command's standard error output. */
  readonly stderr: string;

  /** Creates an error for a failed `command`. */
  constructor(command: string, code: number, stderr: string, options?: ErrorOptions) {
    super(`Command "${command}" failed with exit code ${code}: ${stderr.trim()}`, options);
    this.name = "PgCommandError";
    this.code = code;
    this.stderr = stderr;
  }
}

const DEFAULT_BIN = "/usr/lib/postgresql/15/bin";
const MIN_MAJOR = 15;

interface RunAs {
  name: string;
  uid: number;
  gid: number;
}

interface State {
  root: string;
  dataDir: string;
  binDir: string;
  runAs: RunAs | null;
  stopped: boolean;
}

const live = new Set<State>();
let hooksInstalled = false;

/** Finds the PostgreSQL server binaries: `PG_BIN`, then version 15, then the newest major. */
export function findPgBin(): string {
  const fromEnv = Deno.env.get("PG_BIN");
  if (fromEnv) return fromEnv;
  if (isFile(`${DEFAULT_BIN}/initdb`)) return DEFAULT_BIN;
  const majors: number[] = [];
  try {
    for (const entry of Deno.readDirSync("/usr/lib/postgresql")) {
      const major = Number(entry.name);
      if (Number.isInteger(major) && major >= MIN_MAJOR) majors.push(major);
    }
  } catch {
    // No Debian-style installation; fall through.
  }
  majors.sort((a, b) => b - a);
  for (const major of majors) {
    const dir = `/usr/lib/postgresql/${major}/bin`;
    if (isFile(`${dir}/initdb`)) return dir;
  }
  throw new Error(
    `Cannot find PostgreSQL server binaries: no initdb in ${DEFAULT_BIN} or /usr/lib/postgresql/*/bin; ` +
      "install postgresql-15 (apt-get install -y postgresql-15) or set PG_BIN",
  );
}

/** Starts a throwaway PostgreSQL cluster on a free loopback port. */
export async function startCluster(options: ClusterOptions = {}): Promise<Cluster> {
  const binDir = options.binDir ?? findPgBin();
  const runAs = Deno.uid() === 0 ? await serverUser() : null;
  const parent = options.tmpDir ?? (runAs ? "/tmp" : undefined);
  const root = await Deno.makeTempDir({ dir: parent, prefix: "jobengine-pg-" });
  const state: State = { root, dataDir: `${root}/data`, binDir, runAs, stopped: false };
  const logFile = `${root}/postgres.log`;
  live.add(state);
  installHooks();
  try {
    await Deno.mkdir(`${root}/sock`);
    if (runAs) await chownTree(root, runAs);
    await pg(state, "initdb", [
      "-D",
      state.dataDir,
      "-U",
      "postgres",
      "-A",
      "trust",
      "-E",
      "UTF8",
      "--locale=C",
      "--no-sync",
      "--no-instructions",
    ]);
    let port = 0;
    for (let attempt = 1;; attempt++) {
      port = freePort();
      await writeConfig(state, port, options);
      try {
        await pg(state, "pg_ctl", ["-D", state.dataDir, "-l", logFile, "-w", "-t", "60", "start"]);
        break;
      } catch (error) {
        const log = await readTail(logFile);
        if (attempt < 3 && /could not bind|address already in use/i.test(log)) continue;
        throw new Error(`Cannot start PostgreSQL: server log says:\n${log}`, { cause: error });
      }
    }
    return makeCluster(state, port, logFile);
  } catch (error) {
    cleanupSync(state);
    throw error;
  }
}

function makeCluster(state: State, port: number, logFile: string): Cluster {
  const databaseUrl = (name: string) =>
    `postgres://postgres@127.0.0.1:${port}/${encodeURIComponent(name)}`;
  const url = databaseUrl("postgres");
  const psql = async (args: string[], options: PsqlOptions = {}) => {
    const command = new Deno.Command(`${state.binDir}/psql`, {
      args: [
        "-X",
        "-q",
        "-v",
        "ON_ERROR_STOP=1",
        "-d",
        databaseUrl(options.database ?? "postgres"),
        ...args,
      ],
      stdin: options.input === undefined ? "null" : "piped",
      stdout: "piped",
      stderr: "piped",
      env: { PGCONNECT_TIMEOUT: "10" },
    });
    const child = command.spawn();
    if (options.input !== undefined) {
      const writer = child.stdin.getWriter();
      await writer.write(new TextEncoder().encode(options.input));
      await writer.close();
    }
    const out = await child.output();
    const decoder = new TextDecoder();
    if (!out.success) {
      throw new PgCommandError(`psql ${args.join(" ")}`, out.code, decoder.decode(out.stderr));
    }
    return decoder.decode(out.stdout);
  };
  return {
    url,
    port,
    dataDir: state.dataDir,
    binDir: state.binDir,
    logFile,
    osUser: state.runAs?.name ?? Deno.env.get("USER") ?? "",
    databaseUrl,
    psql,
    async createDatabase(name, options = {}) {
      const template = options.template ? ` template ${quoteIdent(options.template)}` : "";
      const sql = `create database ${quoteIdent(name)}${template}`;
      for (let attempt = 1;; attempt++) {
        try {
          await psql(["-c", sql]);
          return databaseUrl(name);
        } catch (error) {
          const busy = error instanceof PgCommandError &&
            /being accessed by other users/.test(error.stderr);
          if (!busy || attempt >= 10) throw error;
          await delay(50 * attempt);
        }
      }
    },
    async restart() {
      await pg(state, "pg_ctl", [
        "-D",
        state.dataDir,
        "-l",
        logFile,
        "-w",
        "-t",
        "60",
        "-m",
        "fast",
        "restart",
      ]);
    },
    async stop() {
      if (state.stopped) return;
      try {
        await pg(state, "pg_ctl", ["-D", state.dataDir, "-w", "-t", "60", "-m", "fast", "stop"]);
      } catch {
        // Already down, or the fast stop timed out: the sync path below uses immediate mode.
      }
      cleanupSync(state);
    },
    detach() {
      live.delete(state);
      state.stopped = true;
    },
  };
}

async function pg(state: State, binary: string, args: string[]): Promise<string> {
  const path = `${state.binDir}/${binary}`;
  const [cmd, cmdArgs] = state.runAs
    ? ["runuser", ["-u", state.runAs.name, "--", path, ...args]]
    : [path, args];
  const out = await new Deno.Command(cmd, {
    args: cmdArgs,
    cwd: state.root,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decoder = new TextDecoder();
  if (!out.success) {
    throw new PgCommandError(`${binary} ${args.join(" ")}`, out.code, decoder.decode(out.stderr));
  }
  return decoder.decode(out.stdout);
}

async function writeConfig(state: State, port: number, options: ClusterOptions): Promise<void> {
  const settings: Record<string, string | number | boolean> = {
    listen_addresses: "127.0.0.1",
    port,
    unix_socket_directories: `${state.root}/sock`,
    max_connections: 200,
    shared_preload_libraries: "",
    ...(options.fast ? { fsync: false, synchronous_commit: false, full_page_writes: false } : {}),
    ...options.settings,
  };
  const lines = Object.entries(settings).map(([key, value]) =>
    `${key} = '${
      String(value === true ? "on" : value === false ? "off" : value)
        .replaceAll("'", "''")
    }'`
  );
  // postgresql.auto.conf is read last, so these win over initdb's defaults; rewritten per attempt.
  const path = `${state.dataDir}/postgresql.auto.conf`;
  await Deno.writeTextFile(path, `# Written by scripts/pg_cluster.ts\n${lines.join("\n")}\n`);
  if (state.runAs) await Deno.chown(path, state.runAs.uid, state.runAs.gid);
}

async function serverUser(): Promise<RunAs> {
  for (const name of ["postgres", "jobengine"]) {
    const found = await lookupUser(name);
    if (found) return found;
  }
  const out = await new Deno.Command("useradd", {
    args: ["--system", "--no-create-home", "--shell", "/usr/sbin/nologin", "jobengine"],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const found = await lookupUser("jobengine");
  if (!found) {
    const stderr = new TextDecoder().decode(out.stderr);
    throw new Error(`Cannot create the system user "jobengine" to run PostgreSQL: ${stderr}`);
  }
  return found;
}

async function lookupUser(name: string): Promise<RunAs | null> {
  const passwd = await Deno.readTextFile("/etc/passwd");
  for (const line of passwd.split("\n")) {
    const [user, , uid, gid] = line.split(":");
    if (user === name && uid !== undefined && gid !== undefined) {
      return { name, uid: Number(uid), gid: Number(gid) };
    }
  }
  return null;
}

async function chownTree(path: string, user: RunAs): Promise<void> {
  await Deno.chown(path, user.uid, user.gid);
  for await (const entry of Deno.readDir(path)) {
    const child = `${path}/${entry.name}`;
    if (entry.isDirectory) await chownTree(child, user);
    else await Deno.chown(child, user.uid, user.gid);
  }
}

function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  listener.close();
  return port;
}

function installHooks(): void {
  if (hooksInstalled) return;
  hooksInstalled = true;
  globalThis.addEventListener("unload", cleanupAllSync);
  globalThis.addEventListener("error", cleanupAllSync);
  globalThis.addEventListener("unhandledrejection", cleanupAllSync);
  for (const [signal, code] of [["SIGINT", 130], ["SIGTERM", 143]] as const) {
    // A listener replaces the default action, so exit as the signal would have.
    Deno.addSignalListener(signal, () => {
      cleanupAllSync();
      Deno.exit(code);
    });
  }
}

function cleanupAllSync(): void {
  for (const state of [...live]) cleanupSync(state);
}

function cleanupSync(state: State): void {
  live.delete(state);
  if (!state.stopped) {
    state.stopped = true;
    if (isFile(`${state.dataDir}/postmaster.pid`)) {
      const path = `${state.binDir}/pg_ctl`;
      const args = ["-D", state.dataDir, "-w", "-t", "30", "-m", "immediate", "stop"];
      try {
        new Deno.Command(state.runAs ? "runuser" : path, {
          args: state.runAs ? ["-u", state.runAs.name, "--", path, ...args] : args,
          cwd: state.root,
          stdin: "null",
          stdout: "null",
          stderr: "null",
        }).outputSync();
      } catch {
        // Best effort: the directory is removed below either way.
      }
    }
  }
  try {
    Deno.removeSync(state.root, { recursive: true });
  } catch {
    // Already gone.
  }
}

async function readTail(path: string): Promise<string> {
  try {
    return (await Deno.readTextFile(path)).split("\n").slice(-30).join("\n");
  } catch {
    return "(no server log)";
  }
}

function isFile(path: string): boolean {
  try {
    return Deno.statSync(path).isFile;
  } catch {
    return false;
  }
}

function quoteIdent(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
