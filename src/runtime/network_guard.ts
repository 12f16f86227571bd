/**
 * The sealed-mode network guard: replaces the runtime's outbound network APIs with versions that
 * refuse every endpoint that is not on an allowlist of exact `host:port` pairs.
 *
 * Guarded, wherever present: `fetch` (every redirect hop, not just the first URL), `WebSocket`,
 * `WebSocketStream`, `EventSource`, `Deno.connect` (TCP and VSOCK; Unix sockets are local IPC and
 * pass), `Deno.connectTls`, `Deno.connectQuic`, `Deno.listenDatagram` (each UDP `send`),
 * `Deno.createHttpClient` (its proxy) and `Deno.resolveDns` (the system resolver is always
 * refused; an explicit `nameServer` is checked). `data:`, `blob:` and `file:` URLs without a
 * host are local and pass. `Deno.startTls` upgrades a connection that was already checked.
 *
 * Hosts are compared strictly, after normalisation: lowercase, one trailing dot removed, IPv6
 * without brackets in compressed form, IPv4-mapped IPv6 (`::ffff:127.0.0.1`) as its IPv4.
 * `localhost`, `127.0.0.1` and `::1` are three different hosts: `localhost` is whatever the
 * resolver says (it may be `::1`, where a different service can listen), and `127.0.0.1:5432`
 * and `[::1]:5432` are different sockets, so each must be listed to be reachable. URLs are parsed
 * with the WHATWG URL parser, so userinfo, backslashes, percent-encoding and decimal, hex or
 * octal IPv4 forms are checked as the host they really reach. Raw socket host names (for
 * `Deno.connect`) must be literal: `127.1` or `2130706433` never match an entry, because system
 * resolvers disagree on them.
 *
 * This is a tripwire against accidental egress by libraries and job code, not a sandbox against
 * hostile code in the same process. It does not see `node:net`, `node:http`, `node:dgram`,
 * workers (they have their own globals), subprocesses, dynamic imports, proxies configured by
 * `HTTP_PROXY`-style variables, redirects that `EventSource` follows, or references to `fetch`
 * taken and UDP sockets bound before {@linkcode installNetworkGuard} ran (so install it first).
 * The `--allow-net` list that `deno task start` passes in sealed mode is the backstop for these.
 *
 * @module
 */
import { EgressDeniedError } from "../errors.ts";

/** A network endpoint: a normalised host (IPv6 without brackets) and a port. */
export interface Endpoint {
  /** The normalised host, or the host as given when it cannot be normalised. */
  host: string;
  /** The port; 0 when the scheme has no default port and none was given. */
  port: number;
}

/** One refused attempt, as passed to {@linkcode NetworkGuardOptions.onDenied}. */
export interface EgressDenial extends Endpoint {
  /** The API that tried it (`fetch`, `WebSocket`, `Deno.connect`, ...). */
  api: string;
  /** When it was refused. */
  at: Date;
}

/** Options of {@linkcode installNetworkGuard}. */
export interface NetworkGuardOptions {
  /**
   * Exact "host:port" entries that stay reachable (e.g. the database "127.0.0.1:5432").
   * IPv6 as "[::1]:5432". Default: none.
   */
  allow?: readonly string[];
  /**
   * Called for every refused attempt (the engine writes a `sealed.egress_blocked` event from it).
   * What it throws or rejects with is logged, never thrown into the caller.
   */
  onDenied?: (denial: EgressDenial) => void;
  /** Install only if true (the default); `{ sealed: false }` returns a no-op handle. */
  sealed?: boolean;
  /** Where a failing `onDenied` is reported (a `Logger` fits); default `console.error`. */
  logger?: { error(msg: string, fields?: Record<string, unknown>): void };
}

/** The handle of an installed (or no-op) network guard. */
export interface NetworkGuard {
  /** True while the guard replaces the network APIs. */
  readonly active: boolean;
  /** Returns true when a call to `host:port` would go through now (always true when inactive). */
  isAllowed(host: string, port: number): boolean;
  /** Restores the original functions (identity-equal); calling it again does nothing. */
  uninstall(): void;
  /** How many attempts were refused. */
  readonly denied: number;
}

/** A parsed allowlist: normalised `host:port` keys, IPv6 hosts in brackets. */
export type Allowlist = ReadonlySet<string>;

/** Default ports of the schemes the guard checks. */
const DEFAULT_PORTS: Readonly<Record<string, number>> = {
  "http:": 80,
  "https:": 443,
  "ws:": 80,
  "wss:": 443,
  "socks5:": 1080,
  "socks5h:": 1080,
};
/** Schemes that never leave the process or the local file system. */
const LOCAL_SCHEMES: ReadonlySet<string> = new Set(["data:", "blob:", "file:"]);
/** Redirect statuses that `fetch` follows. */
const REDIRECT_STATUSES: ReadonlySet<number> = new Set([301, 302, 303, 307, 308]);
/** The redirect limit of the Fetch standard. */
const MAX_REDIRECTS = 20;
/** Request headers dropped when a redirect turns the request into a GET without a body. */
const BODY_HEADERS = [
  "content-encoding",
  "content-language",
  "content-length",
  "content-location",
  "content-type",
];
/** A host name as the guard accepts it: ASCII labels, no empty label. */
const HOST_NAME = /^[a-z0-9_-]+(?:\.[a-z0-9_-]+)*$/;
/** The key under which the installed guard is registered on `globalThis`, across module copies. */
const INSTALLED = Symbol.for("jobengine.network_guard");

/** The URL getter of `Request`, taken before anyone could replace it; it brand-checks. */
const requestUrl = typeof Request === "function"
  ? Object.getOwnPropertyDescriptor(Request.prototype, "url")?.get
  : undefined;

type AnyFunction = (...args: unknown[]) => unknown;
type AnyConstructor = new (...args: unknown[]) => unknown;

/** Whether the guard is on, and the one place that counts and reports refusals. */
interface Gate {
  active(): boolean;
  check(endpoint: Endpoint, api: string): EgressDeniedError | undefined;
  refuse(endpoint: Endpoint, api: string): EgressDeniedError;
}

/**
 * Normalises a host for comparison, or returns null when it is not a literal host.
 *
 * Lowercases, strips IPv6 brackets, compresses IPv6, turns IPv4-mapped IPv6 into IPv4 and
 * removes one trailing dot. Returns null for anything else a resolver could read differently:
 * non-canonical IPv4 (`127.1`, `0x7f.0.0.1`, `2130706433`), percent-encoding, userinfo, ports,
 * zone IDs, non-ASCII names and the empty string.
 */
export function normalizeHost(host: string): string | null {
  let h = host.toLowerCase();
  if (h.startsWith("[") && h.endsWith("]")) h = h.slice(1, -1);
  if (h.includes(":")) return normalizeIpv6(h);
  if (h.endsWith(".")) h = h.slice(0, -1);
  if (!HOST_NAME.test(h)) return null;
  return parseHostname(h) === h ? h : null;
}

function normalizeIpv6(h: string): string | null {
  if (!/^[0-9a-f:.]+$/.test(h)) return null;
  const parsed = parseHostname(`[${h}]`);
  if (parsed === null) return null;
  const bare = parsed.slice(1, -1);
  const mapped = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/.exec(bare);
  if (!mapped) return bare;
  const high = parseInt(mapped[1]!, 16);
  const low = parseInt(mapped[2]!, 16);
  return `${high >> 8}.${high & 255}.${low >> 8}.${low & 255}`;
}

function parseHostname(host: string): string | null {
  try {
    return new URL(`http://${host}/`).hostname;
  } catch {
    return null;
  }
}

function endpointKey(host: string, port: number): string {
  return host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;
}

/** Parses "host:port" entries (IPv6 as "[::1]:5432"); throws a TypeError for a malformed entry. */
export function parseAllowlist(entries: readonly string[]): Allowlist {
  const keys = new Set<string>();
  for (const entry of entries) {
    const match = /^(\[[^\]]*\]|[^:[\]]*):(\d{1,5})$/.exec(entry.trim());
    const host = match ? normalizeHost(match[1]!) : null;
    const port = match ? Number(match[2]) : 0;
    if (host === null || port < 1 || port > 65535) {
      throw new TypeError(
        `Invalid network guard allowlist entry "${entry}": expected "host:port" with a literal ` +
          `host (IPv6 in brackets) and a port from 1 to 65535`,
      );
    }
    keys.add(endpointKey(host, port));
  }
  return keys;
}

/** Returns true when `host:port` is on the allowlist (hosts compared after normalisation). */
export function checkAllowed(allowlist: Allowlist, host: string, port: number): boolean {
  const normalized = normalizeHost(host);
  return normalized !== null && Number.isInteger(port) &&
    allowlist.has(endpointKey(normalized, port));
}

function isRequest(input: unknown): input is Request {
  return typeof Request === "function" && input instanceof Request;
}

function locationBase(): string | undefined {
  try {
    const href = (globalThis as { location?: { href?: unknown } }).location?.href;
    return typeof href === "string" ? href : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Returns the endpoint a URL (or a Request's URL) connects to, or null for a local URL.
 *
 * Throws a TypeError for an invalid or relative URL (unless `--location` gives a base).
 */
export function parseEndpoint(input: string | URL | Request, api = "fetch"): Endpoint | null {
  const href = isRequest(input) && requestUrl ? String(requestUrl.call(input)) : String(input);
  let url: URL;
  try {
    url = new URL(href, locationBase());
  } catch {
    throw new TypeError(`Cannot check the ${api} URL "${href}": it is not a valid absolute URL`);
  }
  if (LOCAL_SCHEMES.has(url.protocol)) {
    // A file: URL with a host is a network share (UNC) on Windows: checked, and never allowed.
    return url.protocol === "file:" && url.hostname !== "" ? { host: url.hostname, port: 0 } : null;
  }
  const port = url.port === "" ? DEFAULT_PORTS[url.protocol] ?? 0 : Number(url.port);
  return { host: normalizeHost(url.hostname) ?? url.hostname, port };
}

function reportDenial(options: NetworkGuardOptions, denial: EgressDenial): void {
  const { onDenied, logger } = options;
  if (!onDenied) return;
  const msg = "The network guard's onDenied callback failed";
  const log = (error: unknown) => {
    try {
      if (logger) logger.error(msg, { error, denial });
      else console.error(`${msg}:`, error);
    } catch {
      // Logging must not throw into the caller either.
    }
  };
  try {
    const result: unknown = onDenied(denial);
    if (result instanceof Promise) result.catch(log);
  } catch (error) {
    log(error);
  }
}

function inactiveGuard(): NetworkGuard {
  return { active: false, denied: 0, isAllowed: () => true, uninstall: () => {} };
}

/**
 * Installs the network guard and returns its handle.
 *
 * Throws when a guard is already installed (uninstall it first) and, before changing anything,
 * when an allowlist entry is malformed.
 */
export function installNetworkGuard(options: NetworkGuardOptions = {}): NetworkGuard {
  const allowlist = parseAllowlist(options.allow ?? []);
  if (options.sealed === false) return inactiveGuard();
  const registry = globalThis as unknown as Record<symbol, unknown>;
  if (registry[INSTALLED]) {
    throw new Error(
      "Cannot install the network guard: one is already installed; call uninstall() on it first",
    );
  }

  let active = true;
  let denied = 0;
  const gate: Gate = {
    active: () => active,
    refuse(endpoint, api) {
      denied++;
      reportDenial(options, { ...endpoint, api, at: new Date() });
      return new EgressDeniedError(endpoint.host, endpoint.port, api);
    },
    check(endpoint, api) {
      return checkAllowed(allowlist, endpoint.host, endpoint.port)
        ? undefined
        : gate.refuse(endpoint, api);
    },
  };

  const restore: Array<() => void> = [];
  function patch(target: object, key: string, wrap: (original: AnyFunction) => unknown): void {
    const descriptor = Object.getOwnPropertyDescriptor(target, key);
    if (!descriptor) return;
    const original: unknown = Reflect.get(target, key);
    if (typeof original !== "function") return;
    Object.defineProperty(target, key, {
      value: wrap(original as AnyFunction),
      writable: true,
      enumerable: descriptor.enumerable ?? false,
      configurable: true,
    });
    restore.push(() => Object.defineProperty(target, key, descriptor));
  }
  function uninstall(): void {
    if (!active) return;
    for (const undo of restore.splice(0).reverse()) undo();
    active = false;
    if (registry[INSTALLED] === guard) delete registry[INSTALLED];
  }
  const guard: NetworkGuard = {
    get active() {
      return active;
    },
    get denied() {
      return denied;
    },
    isAllowed: (host, port) => !active || checkAllowed(allowlist, host, port),
    uninstall,
  };

  try {
    patch(globalThis, "fetch", (original) => guardFetch(original, gate));
    for (const api of ["WebSocket", "WebSocketStream", "EventSource"]) {
      patch(globalThis, api, (original) => guardConstructor(original, api, gate));
    }
    if (typeof Deno !== "undefined") {
      for (const api of ["connect", "connectTls", "connectQuic"]) {
        patch(Deno, api, (original) => guardConnect(original, `Deno.${api}`, gate));
      }
      patch(Deno, "listenDatagram", (original) => guardListenDatagram(original, gate));
      patch(Deno, "createHttpClient", (original) => guardCreateHttpClient(original, gate));
      patch(Deno, "resolveDns", (original) => guardResolveDns(original, gate));
    }
  } catch (error) {
    uninstall();
    throw new Error("Cannot install the network guard: a network API cannot be replaced", {
      cause: error,
    });
  }
  registry[INSTALLED] = guard;
  return guard;
}

function guardFetch(original: AnyFunction, gate: Gate) {
  const send = original as (input: RequestInfo | URL, init?: RequestInit) => Promise<Response>;
  return function fetch(input: RequestInfo | URL, init?: RequestInit): Promise<Response> {
    if (!gate.active()) return send(input, init);
    // Stringify once, so that what is checked is exactly what is sent.
    let target: Request | string;
    let endpoint: Endpoint | null;
    try {
      target = isRequest(input) ? input : String(input);
      endpoint = parseEndpoint(target, "fetch");
    } catch (error) {
      return Promise.reject(error);
    }
    if (endpoint === null) return send(target, init);
    const refusal = gate.check(endpoint, "fetch");
    if (refusal) return Promise.reject(refusal);
    const mode = init?.redirect ?? (isRequest(target) ? target.redirect : "follow");
    if (mode !== "follow") return send(target, init);
    return fetchFollowingRedirects(send, gate, target, init);
  };
}

/** Follows redirects itself (the runtime would follow them unchecked), checking every hop. */
async function fetchFollowingRedirects(
  send: (input: RequestInfo | URL, init?: RequestInit) => Promise<Response>,
  gate: Gate,
  input: Request | string,
  init: RequestInit | undefined,
): Promise<Response> {
  // Runtime-specific options that a Request does not carry (Deno's client, Node's dispatcher).
  const extra: Record<string, unknown> = { redirect: "manual" };
  for (const key of ["client", "dispatcher"]) {
    if (init && key in init) extra[key] = (init as Record<string, unknown>)[key];
  }
  let request = new Request(input, init);
  for (let hop = 0;; hop++) {
    // Keep a copy of the body in case a 307 or 308 asks to send it again.
    const spare = request.body === null ? request : request.clone();
    const response = await send(request, extra as RequestInit);
    const location = REDIRECT_STATUSES.has(response.status)
      ? response.headers.get("location")
      : null;
    if (location === null) {
      if (spare !== request) spare.body?.cancel().catch(() => {});
      if (hop > 0) Object.defineProperty(response, "redirected", { value: true });
      return response;
    }
    await response.body?.cancel();
    const next = redirectTarget(location, request.url, hop);
    const refusal = gate.check(parseEndpoint(next, "fetch")!, "fetch");
    if (refusal) {
      if (spare !== request) await spare.body?.cancel();
      throw refusal;
    }
    request = redirectRequest(spare, next, response.status);
  }
}

function redirectTarget(location: string, base: string, hop: number): URL {
  if (hop >= MAX_REDIRECTS) {
    throw new TypeError(`Cannot fetch ${base}: more than ${MAX_REDIRECTS} redirects`);
  }
  let next: URL;
  try {
    next = new URL(location, base);
  } catch {
    throw new TypeError(`Cannot follow the redirect from ${base}: invalid location "${location}"`);
  }
  if (next.protocol !== "http:" && next.protocol !== "https:") {
    throw new TypeError(`Cannot follow the redirect to ${next.href}: it is not an HTTP(S) URL`);
  }
  return next;
}

/** Builds the next request of a redirect chain, as the Fetch standard does. */
function redirectRequest(previous: Request, url: URL, status: number): Request {
  let method = previous.method;
  let body = previous.body;
  const headers = new Headers(previous.headers);
  if (
    ((status === 301 || status === 302) && method === "POST") ||
    (status === 303 && method !== "GET" && method !== "HEAD")
  ) {
    method = "GET";
    body?.cancel().catch(() => {});
    body = null;
    for (const name of BODY_HEADERS) headers.delete(name);
  }
  if (new URL(previous.url).origin !== url.origin) {
    for (const name of ["authorization", "proxy-authorization", "cookie"]) headers.delete(name);
  }
  const init: RequestInit & { duplex?: "half" } = {
    method,
    headers,
    body,
    signal: previous.signal,
  };
  if (body !== null) init.duplex = "half";
  return new Request(url, init);
}

/** Wraps `WebSocket`, `WebSocketStream` or `EventSource`: a refused URL throws synchronously. */
function guardConstructor(original: AnyFunction, api: string, gate: Gate) {
  return new Proxy(original as unknown as AnyConstructor, {
    construct(target, args, newTarget) {
      if (gate.active()) {
        const href = String(args[0]);
        let endpoint: Endpoint | null;
        try {
          endpoint = parseEndpoint(href, api);
        } catch (error) {
          throw new DOMException((error as Error).message, "SyntaxError");
        }
        if (endpoint !== null) {
          const refusal = gate.check(endpoint, api);
          if (refusal) throw refusal;
        }
        args = [href, ...args.slice(1)];
      }
      return Reflect.construct(target, args, newTarget) as object;
    },
  });
}

/** Reads `hostname` and `port` of socket options, as Deno does (hostname defaults to 127.0.0.1). */
function socketEndpoint(options: Record<string, unknown>, api: string): Endpoint {
  const hostname = options.hostname === undefined ? "127.0.0.1" : String(options.hostname);
  const port = Number(options.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new TypeError(`Cannot check ${api}: invalid port "${String(options.port)}"`);
  }
  return { host: normalizeHost(hostname) ?? hostname, port };
}

/** Wraps `Deno.connect`, `Deno.connectTls` or `Deno.connectQuic`. */
function guardConnect(original: AnyFunction, api: string, gate: Gate) {
  return function connect(options: unknown): unknown {
    if (!gate.active() || typeof options !== "object" || options === null) {
      return original(options);
    }
    const copy: Record<string, unknown> = { ...options };
    const transport = copy.transport ?? "tcp";
    if (transport === "unix") return original(copy);
    if (transport !== "tcp") {
      const port = Number(copy.port) || 0;
      return Promise.reject(gate.refuse({ host: `${transport}:${copy.cid ?? ""}`, port }, api));
    }
    let endpoint: Endpoint;
    try {
      endpoint = socketEndpoint(copy, api);
    } catch (error) {
      return Promise.reject(error);
    }
    const refusal = gate.check(endpoint, api);
    if (refusal) return Promise.reject(refusal);
    return original({
      ...copy,
      hostname: String(copy.hostname ?? "127.0.0.1"),
      port: endpoint.port,
    });
  };
}

/** Wraps `Deno.listenDatagram`: binding is local, each UDP `send` is checked. */
function guardListenDatagram(original: AnyFunction, gate: Gate) {
  return function listenDatagram(options: unknown): unknown {
    const conn = original(options) as { send(data: Uint8Array, addr: unknown): Promise<number> };
    const send = conn.send;
    Object.defineProperty(conn, "send", {
      configurable: true,
      writable: true,
      value: function guardedSend(data: Uint8Array, addr: unknown): Promise<number> {
        const target = addr as Record<string, unknown> | null;
        if (
          !gate.active() || typeof target !== "object" || target === null ||
          target.transport === "unixpacket"
        ) {
          return send.call(conn, data, addr);
        }
        let endpoint: Endpoint;
        try {
          endpoint = socketEndpoint({ ...target }, "Deno.DatagramConn.send");
        } catch (error) {
          return Promise.reject(error);
        }
        const refusal = gate.check(endpoint, "Deno.DatagramConn.send");
        if (refusal) return Promise.reject(refusal);
        const hostname = String(target.hostname ?? "127.0.0.1");
        return send.call(conn, data, { ...target, hostname, port: endpoint.port });
      },
    });
    return conn;
  };
}

/** Wraps `Deno.createHttpClient`: a proxy must be on the allowlist. */
function guardCreateHttpClient(original: AnyFunction, gate: Gate) {
  const api = "Deno.createHttpClient";
  return function createHttpClient(options: unknown): unknown {
    const proxy = (options as { proxy?: Record<string, unknown> } | null)?.proxy;
    if (!gate.active() || typeof proxy !== "object" || proxy === null) return original(options);
    const transport = proxy.transport;
    let endpoint: Endpoint | null;
    if (transport === "unix") {
      endpoint = null;
    } else if (transport === "tcp") {
      endpoint = socketEndpoint(proxy, api);
    } else if (transport === "vsock") {
      endpoint = { host: `vsock:${proxy.cid ?? ""}`, port: Number(proxy.port) || 0 };
    } else {
      const url = String(proxy.url);
      const scheme = transport === "https" ? "https" : "http";
      endpoint = parseEndpoint(url.includes("://") ? url : `${scheme}://${url}`, api) ??
        { host: url, port: 0 };
    }
    if (endpoint !== null) {
      const refusal = gate.check(endpoint, api);
      if (refusal) throw refusal;
    }
    return original(options);
  };
}

/** Wraps `Deno.resolveDns`: DNS queries are egress (a query name can carry data out). */
function guardResolveDns(original: AnyFunction, gate: Gate) {
  const api = "Deno.resolveDns";
  return function resolveDns(query: unknown, recordType: unknown, options?: unknown): unknown {
    if (!gate.active()) return original(query, recordType, options);
    const nameServer =
      (options as { nameServer?: { ipAddr?: unknown; port?: unknown } } | undefined)
        ?.nameServer;
    if (!nameServer) {
      // The system resolver's address is not known here, so it cannot be allowed.
      return Promise.reject(gate.refuse({ host: String(query), port: 53 }, api));
    }
    let endpoint: Endpoint;
    try {
      endpoint = socketEndpoint({ hostname: nameServer.ipAddr, port: nameServer.port ?? 53 }, api);
    } catch (error) {
      return Promise.reject(error);
    }
    const refusal = gate.check(endpoint, api);
    if (refusal) return Promise.reject(refusal);
    return original(query, recordType, {
      ...options as object,
      nameServer: { ipAddr: nameServer.ipAddr, port: endpoint.port },
    });
  };
}
