/**
 * Tests of the sealed-mode network guard. The proof is a socket, not a mock: a listener on
 * 127.0.0.1 counts accepted connections, and a refused call must leave it at zero.
 */
import assert from "node:assert/strict";
import { EgressDeniedError } from "../../src/errors.ts";
import {
  checkAllowed,
  type EgressDenial,
  installNetworkGuard,
  type NetworkGuard,
  type NetworkGuardOptions,
  normalizeHost,
  parseAllowlist,
  parseEndpoint,
} from "../../src/runtime/network_guard.ts";

// ---------------------------------------------------------------------------------------------
// Helpers: a counting HTTP listener on 127.0.0.1 and a guard that is always uninstalled.
// ---------------------------------------------------------------------------------------------

interface ReceivedRequest {
  method: string;
  path: string;
  headers: Map<string, string>;
  body: string;
}

type Respond = (request: ReceivedRequest) => string;

interface CountingServer {
  readonly port: number;
  readonly accepted: number;
  readonly requests: ReceivedRequest[];
  close(): Promise<void>;
}

function httpResponse(status: string, body = "", headers: Record<string, string> = {}): string {
  const lines = [
    `HTTP/1.1 ${status}`,
    `content-length: ${new TextEncoder().encode(body).length}`,
    "connection: close",
    ...Object.entries(headers).map(([name, value]) => `${name}: ${value}`),
  ];
  return `${lines.join("\r\n")}\r\n\r\n${body}`;
}

function isComplete(text: string): boolean {
  const end = text.indexOf("\r\n\r\n");
  if (end < 0) return false;
  const head = text.slice(0, end).toLowerCase();
  const body = text.slice(end + 4);
  if (/\r\ntransfer-encoding: *chunked/.test(head)) {
    return body === "0\r\n\r\n" || body.endsWith("\r\n0\r\n\r\n");
  }
  const length = /\r\ncontent-length: *(\d+)/.exec(head);
  return body.length >= Number(length?.[1] ?? 0);
}

function decodeChunked(body: string): string {
  let out = "";
  let rest = body;
  while (true) {
    const lineEnd = rest.indexOf("\r\n");
    const size = parseInt(rest.slice(0, lineEnd), 16);
    if (!(size > 0)) return out;
    out += rest.slice(lineEnd + 2, lineEnd + 2 + size);
    rest = rest.slice(lineEnd + 2 + size + 2);
  }
}

function parseRequest(text: string): ReceivedRequest {
  const end = text.indexOf("\r\n\r\n");
  const [requestLine = "", ...headerLines] = text.slice(0, end).split("\r\n");
  const [method = "", path = ""] = requestLine.split(" ");
  const headers = new Map<string, string>();
  for (const line of headerLines) {
    const colon = line.indexOf(":");
    headers.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim());
  }
  const raw = text.slice(end + 4);
  const body = headers.get("transfer-encoding") === "chunked" ? decodeChunked(raw) : raw;
  return { method, path, headers, body };
}

async function serveOnce(conn: Deno.Conn, respond: Respond, requests: ReceivedRequest[]) {
  const decoder = new TextDecoder();
  const buffer = new Uint8Array(64 * 1024);
  let text = "";
  // A client that never sends a whole request (a TLS or QUIC handshake) is hung up on.
  const timer = setTimeout(() => conn.close(), 1000);
  try {
    while (!isComplete(text)) {
      const n = await conn.read(buffer);
      if (n === null) return;
      text += decoder.decode(buffer.subarray(0, n), { stream: true });
    }
    const request = parseRequest(text);
    requests.push(request);
    await conn.write(new TextEncoder().encode(respond(request)));
  } catch {
    // The client went away; nothing to answer.
  } finally {
    clearTimeout(timer);
    try {
      conn.close();
    } catch {
      // Already closed.
    }
  }
}

/** Starts a listener on 127.0.0.1 at a free port that counts every accepted connection. */
function startServer(respond: Respond = () => httpResponse("200 OK", "ok")): CountingServer {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const requests: ReceivedRequest[] = [];
  const handlers = new Set<Promise<void>>();
  let accepted = 0;
  const loop = (async () => {
    try {
      for await (const conn of listener) {
        accepted++;
        const handler: Promise<void> = serveOnce(conn, respond, requests)
          .finally(() => handlers.delete(handler));
        handlers.add(handler);
      }
    } catch {
      // The listener was closed.
    }
  })();
  return {
    port: listener.addr.port,
    get accepted() {
      return accepted;
    },
    requests,
    async close() {
      listener.close();
      await loop;
      await Promise.all(handlers);
    },
  };
}

/** Gives a refused call time to reach the listener, were it not refused. */
function settle(ms = 150): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Runs `fn` with a guard installed, and always uninstalls it. */
async function withGuard(
  options: NetworkGuardOptions,
  fn: (guard: NetworkGuard, denials: EgressDenial[]) => Promise<void> | void,
): Promise<void> {
  const denials: EgressDenial[] = [];
  const guard = installNetworkGuard({ onDenied: (denial) => denials.push(denial), ...options });
  try {
    await fn(guard, denials);
  } finally {
    guard.uninstall();
  }
}

function isEgressDenied(host: string, port: number, api: string) {
  return (error: unknown) => {
    assert.ok(error instanceof EgressDeniedError, `expected EgressDeniedError, got ${error}`);
    assert.equal(error.code, "egress_denied");
    assert.deepEqual([error.host, error.port, error.api], [host, port, api]);
    return true;
  };
}

/** A port that is never the listener's (ephemeral ports are far above it). */
const OTHER = "127.0.0.1:5432";

// ---------------------------------------------------------------------------------------------
// Pure functions: normalisation, endpoints, the allowlist.
// ---------------------------------------------------------------------------------------------

Deno.test("normalizeHost() lowercases host names and removes one trailing dot", () => {
  assert.equal(normalizeHost("LocalHost"), "localhost");
  assert.equal(normalizeHost("localhost."), "localhost");
  assert.equal(normalizeHost("DB.Internal."), "db.internal");
  assert.equal(normalizeHost("127.0.0.1."), "127.0.0.1");
  assert.equal(normalizeHost("my_host-1.example"), "my_host-1.example");
});

Deno.test("normalizeHost() strips IPv6 brackets and compresses IPv6", () => {
  assert.equal(normalizeHost("::1"), "::1");
  assert.equal(normalizeHost("[::1]"), "::1");
  assert.equal(normalizeHost("[0:0:0:0:0:0:0:1]"), "::1");
  assert.equal(normalizeHost("0000:0000:0000:0000:0000:0000:0000:0001"), "::1");
  assert.equal(normalizeHost("[2001:DB8:0:0:0:0:0:1]"), "2001:db8::1");
  assert.equal(normalizeHost("::"), "::");
});

Deno.test("normalizeHost() treats IPv4-mapped IPv6 as its IPv4", () => {
  assert.equal(normalizeHost("::ffff:127.0.0.1"), "127.0.0.1");
  assert.equal(normalizeHost("[::FFFF:7F00:1]"), "127.0.0.1");
  assert.equal(normalizeHost("0:0:0:0:0:ffff:c000:0201"), "192.0.2.1");
  // IPv4-compatible and NAT64 addresses are different IPv6 hosts, not their IPv4.
  assert.equal(normalizeHost("::127.0.0.1"), "::7f00:1");
  assert.equal(normalizeHost("64:ff9b::127.0.0.1"), "64:ff9b::7f00:1");
});

Deno.test("normalizeHost() rejects non-literal and non-canonical hosts", () => {
  for (
    const host of [
      "",
      ".",
      "127.1",
      "2130706433",
      "0x7f.0.0.1",
      "0177.0.0.1",
      "127.0.0.01",
      "%31%32%37.0.0.1",
      "evil.com:80",
      "user@127.0.0.1",
      "127.0.0.1/x",
      "a b",
      "a..b",
      "fe80::1%eth0",
      "[::1",
      "1:2:3:4:5:6:7:8:9",
      "exämple.com",
      "999.0.0.1",
    ]
  ) {
    assert.equal(normalizeHost(host), null, host);
  }
});

Deno.test("parseEndpoint() applies default ports of http, https, ws and wss", () => {
  assert.deepEqual(parseEndpoint("http://example.com/"), { host: "example.com", port: 80 });
  assert.deepEqual(parseEndpoint("https://example.com/"), { host: "example.com", port: 443 });
  assert.deepEqual(parseEndpoint("ws://example.com/"), { host: "example.com", port: 80 });
  assert.deepEqual(parseEndpoint("wss://example.com/"), { host: "example.com", port: 443 });
  assert.deepEqual(parseEndpoint("https://example.com:443/"), { host: "example.com", port: 443 });
  assert.deepEqual(parseEndpoint("http://example.com:0080/"), { host: "example.com", port: 80 });
  assert.deepEqual(parseEndpoint("http://example.com:8080/"), { host: "example.com", port: 8080 });
  assert.deepEqual(parseEndpoint("wss://[::1]:9443/"), { host: "::1", port: 9443 });
  // A scheme without a default port gets port 0, which no allowlist entry can name.
  assert.deepEqual(parseEndpoint("gopher://example.com/"), { host: "example.com", port: 0 });
});

Deno.test("parseEndpoint() reads the host that WHATWG URL parsing connects to", () => {
  const cases: Array<[string, string, number]> = [
    ["http://127.0.0.1:80@evil.example/", "evil.example", 80],
    ["http://127.0.0.1@evil.example:8080/", "evil.example", 8080],
    ["http:\\\\evil.example\\x", "evil.example", 80],
    ["http://evil.example\\@127.0.0.1:5432/", "evil.example", 80],
    ["http://evil.example#@127.0.0.1:5432/", "evil.example", 80],
    ["http://evil.example?@127.0.0.1:5432/", "evil.example", 80],
    ["http://127.0.0.1\t.evil.example/", "127.0.0.1.evil.example", 80],
    ["http://2130706433/", "127.0.0.1", 80],
    ["http://0x7f.1/", "127.0.0.1", 80],
    ["http://0177.0.0.1/", "127.0.0.1", 80],
    ["http://127.1/", "127.0.0.1", 80],
    ["http://%31%32%37.0.0.1/", "127.0.0.1", 80],
    ["http://[0:0:0:0:0:0:0:1]:5432/", "::1", 5432],
    ["http://[::ffff:127.0.0.1]:5432/", "127.0.0.1", 5432],
    ["HTTP://LocalHost.:81/", "localhost", 81],
    ["http://ex%61mple.com/", "example.com", 80],
  ];
  for (const [url, host, port] of cases) {
    assert.deepEqual(parseEndpoint(url), { host, port }, url);
  }
});

Deno.test("parseEndpoint() returns null for data:, blob: and local file: URLs", () => {
  assert.equal(parseEndpoint("data:text/plain,hello"), null);
  assert.equal(parseEndpoint("blob:http://example.com/0f6e4a7c-1d4b-4b9e-8f5e-2f1d5c7e9a10"), null);
  assert.equal(parseEndpoint("file:///etc/hosts"), null);
  assert.equal(parseEndpoint("file://localhost/etc/hosts"), null);
  // A file: URL with a host is a network share: checked, on port 0, so never allowed.
  assert.deepEqual(parseEndpoint("file://fileserver/share/x"), { host: "fileserver", port: 0 });
});

Deno.test("parseEndpoint() reads URL objects and the URL of a Request", () => {
  assert.deepEqual(parseEndpoint(new URL("https://example.com:8443/a")), {
    host: "example.com",
    port: 8443,
  });
  assert.deepEqual(parseEndpoint(new Request("http://[::ffff:7f00:1]:9/")), {
    host: "127.0.0.1",
    port: 9,
  });
});

Deno.test("parseEndpoint() throws TypeError for relative and invalid URLs", () => {
  for (const url of ["/relative", "relative", "", "http://a b/", "http://[::1/", "http://"]) {
    assert.throws(() => parseEndpoint(url, "fetch"), TypeError, url);
  }
  assert.throws(() => parseEndpoint("/x", "WebSocket"), /Cannot check the WebSocket URL "\/x"/);
});

Deno.test("parseAllowlist() normalises entries", () => {
  const allowlist = parseAllowlist([
    "127.0.0.1:5432",
    " LOCALHOST.:5433 ",
    "[0:0:0:0:0:0:0:1]:5434",
    "[::ffff:127.0.0.1]:5435",
    "db.internal:6543",
  ]);
  assert.deepEqual([...allowlist], [
    "127.0.0.1:5432",
    "localhost:5433",
    "[::1]:5434",
    "127.0.0.1:5435",
    "db.internal:6543",
  ]);
});

Deno.test("parseAllowlist() rejects malformed entries", () => {
  for (
    const entry of [
      "127.0.0.1",
      "127.0.0.1:",
      ":5432",
      "::1:5432",
      "127.0.0.1:0",
      "127.0.0.1:65536",
      "127.0.0.1:54320000",
      "127.1:5432",
      "2130706433:5432",
      "*:5432",
      "host:port",
      "http://127.0.0.1:5432",
      "user@127.0.0.1:5432",
    ]
  ) {
    assert.throws(() => parseAllowlist([entry]), /Invalid network guard allowlist entry/, entry);
  }
});

Deno.test("checkAllowed() matches exact host:port pairs only", () => {
  const allowlist = parseAllowlist(["127.0.0.1:5432", "[::1]:5433", "db.internal:6543"]);
  assert.equal(checkAllowed(allowlist, "127.0.0.1", 5432), true);
  assert.equal(checkAllowed(allowlist, "::ffff:127.0.0.1", 5432), true);
  assert.equal(checkAllowed(allowlist, "[0:0:0:0:0:0:0:1]", 5433), true);
  assert.equal(checkAllowed(allowlist, "DB.internal.", 6543), true);
  assert.equal(checkAllowed(allowlist, "127.0.0.1", 5433), false);
  assert.equal(checkAllowed(allowlist, "127.0.0.2", 5432), false);
  assert.equal(checkAllowed(allowlist, "0.0.0.0", 5432), false);
  assert.equal(checkAllowed(allowlist, "127.1", 5432), false);
  assert.equal(checkAllowed(allowlist, "db.internal", 5432), false);
  assert.equal(checkAllowed(allowlist, "internal", 6543), false);
  assert.equal(checkAllowed(allowlist, "127.0.0.1", 5432.5), false);
  assert.equal(checkAllowed(parseAllowlist([]), "127.0.0.1", 5432), false);
});

Deno.test("checkAllowed() keeps localhost, 127.0.0.1 and ::1 distinct", () => {
  const loopbacks = ["localhost", "127.0.0.1", "::1"];
  for (const entry of loopbacks) {
    const allowlist = parseAllowlist([`${entry.includes(":") ? `[${entry}]` : entry}:5432`]);
    for (const host of loopbacks) {
      assert.equal(checkAllowed(allowlist, host, 5432), host === entry, `${host} vs ${entry}`);
    }
  }
});

// ---------------------------------------------------------------------------------------------
// Installing and uninstalling.
// ---------------------------------------------------------------------------------------------

function guardedFunctions(): Record<string, unknown> {
  const deno = Deno as unknown as Record<string, unknown>;
  return {
    fetch: globalThis.fetch,
    WebSocket: globalThis.WebSocket,
    EventSource: globalThis.EventSource,
    "Deno.connect": deno.connect,
    "Deno.connectTls": deno.connectTls,
    "Deno.createHttpClient": deno.createHttpClient,
    "Deno.resolveDns": deno.resolveDns,
  };
}

Deno.test("installNetworkGuard({ sealed: false }) returns an inactive handle and changes nothing", () => {
  const before = guardedFunctions();
  const guard = installNetworkGuard({ sealed: false, allow: ["127.0.0.1:5432"] });
  assert.equal(guard.active, false);
  assert.equal(guard.denied, 0);
  assert.equal(guard.isAllowed("203.0.113.9", 443), true);
  assert.deepEqual(guardedFunctions(), before);
  guard.uninstall();
  assert.deepEqual(guardedFunctions(), before);
});

Deno.test("installNetworkGuard() replaces every network API it finds", () => {
  const before = guardedFunctions();
  const guard = installNetworkGuard();
  try {
    assert.equal(guard.active, true);
    const during = guardedFunctions();
    for (const [name, original] of Object.entries(before)) {
      assert.equal(typeof original, "function", name);
      assert.notEqual(during[name], original, name);
    }
  } finally {
    guard.uninstall();
  }
});

Deno.test("uninstall() restores the original functions (identity-equal) and is idempotent", () => {
  const before = guardedFunctions();
  const webSocketDescriptor = Object.getOwnPropertyDescriptor(globalThis, "WebSocket");
  const guard = installNetworkGuard();
  guard.uninstall();
  assert.equal(guard.active, false);
  assert.deepEqual(guardedFunctions(), before);
  assert.deepEqual(Object.getOwnPropertyDescriptor(globalThis, "WebSocket"), webSocketDescriptor);
  guard.uninstall();
  assert.deepEqual(guardedFunctions(), before);
  assert.equal(guard.isAllowed("203.0.113.9", 443), true);
});

Deno.test("installNetworkGuard() throws when a guard is already installed", () => {
  const first = installNetworkGuard();
  try {
    assert.throws(
      () => installNetworkGuard(),
      /Cannot install the network guard: .*already installed/,
    );
    // A no-op handle is still fine: it installs nothing.
    assert.equal(installNetworkGuard({ sealed: false }).active, false);
  } finally {
    first.uninstall();
  }
  const second = installNetworkGuard();
  assert.equal(second.active, true);
  second.uninstall();
  // The first handle is spent: uninstalling it again must not touch the second's state.
  first.uninstall();
  assert.equal(second.active, false);
});

Deno.test("installNetworkGuard() rejects a malformed allowlist entry before changing anything", () => {
  const before = guardedFunctions();
  assert.throws(() => installNetworkGuard({ allow: ["localhost"] }), TypeError);
  assert.throws(() => installNetworkGuard({ allow: ["localhost"], sealed: false }), TypeError);
  assert.deepEqual(guardedFunctions(), before);
  installNetworkGuard().uninstall();
});

// ---------------------------------------------------------------------------------------------
// The proof: real sockets on 127.0.0.1.
// ---------------------------------------------------------------------------------------------

Deno.test("installNetworkGuard() refuses fetch to 127.0.0.1:PORT when not allowed", async () => {
  const server = startServer();
  try {
    const { port } = server;
    await withGuard({ allow: [OTHER] }, async (guard, denials) => {
      const url = `http://127.0.0.1:${port}/`;
      await assert.rejects(fetch(url), isEgressDenied("127.0.0.1", port, "fetch"));
      await assert.rejects(fetch(new URL(url)), isEgressDenied("127.0.0.1", port, "fetch"));
      await assert.rejects(fetch(new Request(url)), isEgressDenied("127.0.0.1", port, "fetch"));
      await assert.rejects(
        fetch(url, { method: "POST", body: "secret" }),
        isEgressDenied("127.0.0.1", port, "fetch"),
      );
      assert.equal(guard.denied, 4);
      assert.equal(guard.isAllowed("127.0.0.1", port), false);
      assert.equal(denials.length, 4);
      for (const denial of denials) {
        assert.deepEqual([denial.host, denial.port, denial.api], ["127.0.0.1", port, "fetch"]);
        assert.ok(denial.at instanceof Date);
      }
      await settle();
      assert.equal(server.accepted, 0);
    });
  } finally {
    await server.close();
  }
});

Deno.test("installNetworkGuard() refuses new WebSocket() and new EventSource() synchronously", async () => {
  const server = startServer();
  try {
    const { port } = server;
    await withGuard({ allow: [OTHER] }, async (guard, denials) => {
      assert.throws(
        () => new WebSocket(`ws://127.0.0.1:${port}`),
        isEgressDenied("127.0.0.1", port, "WebSocket"),
      );
      assert.throws(
        () => new WebSocket(new URL(`http://127.0.0.1:${port}/socket`), ["chat"]),
        isEgressDenied("127.0.0.1", port, "WebSocket"),
      );
      assert.throws(
        () => new EventSource(`http://127.0.0.1:${port}/events`),
        isEgressDenied("127.0.0.1", port, "EventSource"),
      );
      assert.throws(() => new WebSocket("/relative"), (error: unknown) => {
        assert.ok(error instanceof DOMException);
        assert.equal(error.name, "SyntaxError");
        return true;
      });
      assert.equal(guard.denied, 3);
      assert.deepEqual(denials.map((d) => d.api), ["WebSocket", "WebSocket", "EventSource"]);
      await settle();
      assert.equal(server.accepted, 0);
    });
  } finally {
    await server.close();
  }
});

Deno.test("installNetworkGuard() refuses Deno.connect() and Deno.connectTls() to 127.0.0.1:PORT", async () => {
  const server = startServer();
  try {
    const { port } = server;
    await withGuard({ allow: [OTHER] }, async (guard, denials) => {
      await assert.rejects(
        Deno.connect({ hostname: "127.0.0.1", port }),
        isEgressDenied("127.0.0.1", port, "Deno.connect"),
      );
      await assert.rejects(
        Deno.connect({ port }),
        isEgressDenied("127.0.0.1", port, "Deno.connect"),
      );
      await assert.rejects(
        Deno.connect({ hostname: "::ffff:127.0.0.1", port }),
        isEgressDenied("127.0.0.1", port, "Deno.connect"),
      );
      await assert.rejects(
        Deno.connectTls({ hostname: "127.0.0.1", port }),
        isEgressDenied("127.0.0.1", port, "Deno.connectTls"),
      );
      await assert.rejects(
        Deno.connect({ transport: "vsock", cid: 2, port } as unknown as Deno.ConnectOptions),
        isEgressDenied("vsock:2", port, "Deno.connect"),
      );
      assert.equal(guard.denied, 5);
      assert.equal(denials.length, 5);
      await settle();
      assert.equal(server.accepted, 0);
    });
  } finally {
    await server.close();
  }
});

Deno.test("installNetworkGuard() refuses smuggled forms of a refused 127.0.0.1:PORT", async () => {
  const server = startServer();
  try {
    const { port } = server;
    await withGuard({ allow: [OTHER] }, async (guard) => {
      for (
        const url of [
          `http://2130706433:${port}/`,
          `http://0x7f.1:${port}/`,
          `http://0177.0.0.1:${port}/`,
          `http://%31%32%37.0.0.1:${port}/`,
          `http://user:pass@127.0.0.1:${port}/`,
          `http://127.0.0.1.:${port}/`,
          `http://[::ffff:127.0.0.1]:${port}/`,
          `HTTP://127.0.0.1:${port}/`,
        ]
      ) {
        await assert.rejects(fetch(url), isEgressDenied("127.0.0.1", port, "fetch"), url);
      }
      await assert.rejects(
        Deno.connect({ hostname: "2130706433", port }),
        isEgressDenied("2130706433", port, "Deno.connect"),
      );
      assert.equal(guard.denied, 9);
      await settle();
      assert.equal(server.accepted, 0);
    });
  } finally {
    await server.close();
  }
});

Deno.test("installNetworkGuard() refuses other hosts dressed up as an allowed 127.0.0.1:PORT", async () => {
  const server = startServer();
  try {
    const { port } = server;
    await withGuard({ allow: [`127.0.0.1:${port}`] }, async (guard) => {
      for (
        const url of [
          `http://127.0.0.1:${port}@evil.invalid/`,
          `http://evil.invalid\\@127.0.0.1:${port}/`,
          `http://evil.invalid#@127.0.0.1:${port}/`,
          `http:\\\\evil.invalid\\127.0.0.1:${port}/`,
        ]
      ) {
        await assert.rejects(fetch(url), isEgressDenied("evil.invalid", 80, "fetch"), url);
      }
      await assert.rejects(
        fetch(`http://127.0.0.1.evil.invalid:${port}/`),
        isEgressDenied("127.0.0.1.evil.invalid", port, "fetch"),
      );
      // Strict: a raw socket host name must be literal, even when it would mean 127.0.0.1.
      await assert.rejects(
        Deno.connect({ hostname: "127.1", port }),
        isEgressDenied("127.1", port, "Deno.connect"),
      );
      await assert.rejects(
        Deno.connect({ hostname: "localhost", port }),
        isEgressDenied("localhost", port, "Deno.connect"),
      );
      assert.equal(guard.denied, 7);
      await settle();
      assert.equal(server.accepted, 0);
    });
  } finally {
    await server.close();
  }
});

Deno.test("installNetworkGuard() lets fetch and Deno.connect reach an allowed 127.0.0.1:PORT", async () => {
  const server = startServer();
  try {
    const { port } = server;
    await withGuard({ allow: [OTHER, `127.0.0.1:${port}`] }, async (guard) => {
      assert.equal(guard.isAllowed("127.0.0.1", port), true);
      const response = await fetch(`http://127.0.0.1:${port}/`);
      assert.equal(await response.text(), "ok");
      assert.equal(server.accepted, 1);
      // WHATWG URL parsing turns these into 127.0.0.1, which is where they connect.
      const odd = await fetch(new Request(`http://0x7f.1:${port}/`));
      assert.equal(await odd.text(), "ok");
      assert.equal(server.accepted, 2);
      const conn = await Deno.connect({ hostname: "127.0.0.1", port });
      conn.close();
      await settle(50);
      assert.equal(server.accepted, 3);
      assert.equal(guard.denied, 0);
    });
  } finally {
    await server.close();
  }
});

Deno.test("uninstall() restores fetch so that it reaches 127.0.0.1:PORT again", async () => {
  const server = startServer();
  try {
    const { port } = server;
    const original = globalThis.fetch;
    const guard = installNetworkGuard({ allow: [OTHER] });
    try {
      await assert.rejects(fetch(`http://127.0.0.1:${port}/`), EgressDeniedError);
    } finally {
      guard.uninstall();
    }
    assert.equal(globalThis.fetch, original);
    await settle();
    assert.equal(server.accepted, 0);
    const response = await fetch(`http://127.0.0.1:${port}/`);
    assert.equal(await response.text(), "ok");
    assert.equal(server.accepted, 1);
    assert.equal(guard.denied, 1);
  } finally {
    await server.close();
  }
});

Deno.test("installNetworkGuard() lets local data:, blob: and file: URLs through fetch", async () => {
  await withGuard({}, async (guard) => {
    assert.equal(await (await fetch("data:text/plain,hello")).text(), "hello");
    const blobUrl = URL.createObjectURL(new Blob(["from a blob"]));
    try {
      assert.equal(await (await fetch(blobUrl)).text(), "from a blob");
    } finally {
      URL.revokeObjectURL(blobUrl);
    }
    const file = await Deno.makeTempFile();
    try {
      await Deno.writeTextFile(file, "from a file");
      const response = await fetch(new URL(`file://${file}`));
      assert.equal(await response.text(), "from a file");
    } finally {
      await Deno.remove(file);
    }
    await assert.rejects(
      fetch("file://fileserver/share/x"),
      isEgressDenied("fileserver", 0, "fetch"),
    );
    await assert.rejects(fetch("/relative"), TypeError);
    assert.equal(guard.denied, 1);
  });
});

Deno.test("installNetworkGuard() lets Deno.connect reach a Unix socket (local IPC)", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/guard.sock`;
  const listener = Deno.listen({ transport: "unix", path });
  try {
    await withGuard({}, async (guard) => {
      const accepting = listener.accept();
      const conn = await Deno.connect({ transport: "unix", path });
      const accepted = await accepting;
      accepted.close();
      conn.close();
      assert.equal(guard.denied, 0);
    });
  } finally {
    listener.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("installNetworkGuard() refuses a redirect to a 127.0.0.1:PORT that is not allowed", async () => {
  const target = startServer();
  const redirector = startServer(() =>
    httpResponse("302 Found", "", { location: `http://127.0.0.1:${target.port}/next` })
  );
  try {
    await withGuard({ allow: [`127.0.0.1:${redirector.port}`] }, async (guard, denials) => {
      await assert.rejects(
        fetch(`http://127.0.0.1:${redirector.port}/`),
        isEgressDenied("127.0.0.1", target.port, "fetch"),
      );
      await assert.rejects(
        fetch(`http://127.0.0.1:${redirector.port}/`, { method: "POST", body: "payload" }),
        isEgressDenied("127.0.0.1", target.port, "fetch"),
      );
      assert.deepEqual(denials.map((d) => d.port), [target.port, target.port]);
      // With redirect: "manual" nothing is followed, so the 302 itself is the answer.
      const manual = await fetch(`http://127.0.0.1:${redirector.port}/`, { redirect: "manual" });
      await manual.body?.cancel();
      assert.equal(manual.status, 302);
      assert.equal(guard.denied, 2);
      await settle();
      assert.equal(redirector.accepted, 3);
      assert.equal(target.accepted, 0);
    });
  } finally {
    await redirector.close();
    await target.close();
  }
});

Deno.test("installNetworkGuard() follows redirects between allowed hosts as fetch would", async () => {
  const target = startServer((request) =>
    httpResponse(
      "200 OK",
      `${request.method} ${request.body} auth=${request.headers.has("authorization")}`,
    )
  );
  const redirector = startServer((request) => {
    const location = `http://127.0.0.1:${target.port}/echo`;
    if (request.path === "/see-other") return httpResponse("303 See Other", "", { location });
    if (request.path === "/found") return httpResponse("302 Found", "", { location });
    if (request.path === "/temporary") {
      return httpResponse("307 Temporary Redirect", "", { location });
    }
    if (request.path === "/loop") return httpResponse("302 Found", "", { location: "/loop" });
    return httpResponse("404 Not Found");
  });
  const base = `http://127.0.0.1:${redirector.port}`;
  try {
    await withGuard(
      { allow: [`127.0.0.1:${redirector.port}`, `127.0.0.1:${target.port}`] },
      async (guard) => {
        const headers = { authorization: "Bearer secret" };
        const seeOther = await fetch(`${base}/see-other`, { method: "POST", body: "x", headers });
        assert.equal(await seeOther.text(), "GET  auth=false");
        assert.equal(seeOther.redirected, true);
        assert.equal(seeOther.url, `http://127.0.0.1:${target.port}/echo`);

        const found = await fetch(`${base}/found`, { method: "POST", body: "x" });
        assert.equal(await found.text(), "GET  auth=false");

        const temporary = await fetch(`${base}/temporary`, { method: "PUT", body: "payload" });
        assert.equal(await temporary.text(), "PUT payload auth=false");

        const plain = await fetch(`http://127.0.0.1:${target.port}/echo`, { headers });
        assert.equal(await plain.text(), "GET  auth=true");
        assert.equal(plain.redirected, false);

        await assert.rejects(fetch(`${base}/loop`), TypeError);
        assert.equal(guard.denied, 0);
        assert.equal(target.accepted, 4);
      },
    );
  } finally {
    await redirector.close();
    await target.close();
  }
});

Deno.test("installNetworkGuard() refuses Deno.createHttpClient() with a proxy that is not allowed", async () => {
  const server = startServer();
  try {
    const { port } = server;
    await withGuard({ allow: [`127.0.0.1:${port}`] }, (guard) => {
      assert.throws(
        () => Deno.createHttpClient({ proxy: { url: "http://192.0.2.10:3128" } }),
        isEgressDenied("192.0.2.10", 3128, "Deno.createHttpClient"),
      );
      assert.throws(
        () => Deno.createHttpClient({ proxy: { url: "proxy.internal:8080" } }),
        isEgressDenied("proxy.internal", 8080, "Deno.createHttpClient"),
      );
      assert.throws(
        () => Deno.createHttpClient({ proxy: { url: "socks5://192.0.2.10" } }),
        isEgressDenied("192.0.2.10", 1080, "Deno.createHttpClient"),
      );
      assert.throws(
        () => Deno.createHttpClient({ proxy: { transport: "tcp", hostname: "192.0.2.10", port } }),
        isEgressDenied("192.0.2.10", port, "Deno.createHttpClient"),
      );
      Deno.createHttpClient({ proxy: { url: `http://127.0.0.1:${port}` } }).close();
      Deno.createHttpClient({}).close();
      assert.equal(guard.denied, 4);
    });
    assert.equal(server.accepted, 0);
  } finally {
    await server.close();
  }
});

Deno.test("installNetworkGuard() refuses Deno.resolveDns() unless its name server is allowed", async () => {
  await withGuard({}, async (guard, denials) => {
    await assert.rejects(
      Deno.resolveDns("example.com", "A"),
      isEgressDenied("example.com", 53, "Deno.resolveDns"),
    );
    await assert.rejects(
      Deno.resolveDns("example.com", "A", { nameServer: { ipAddr: "192.0.2.53", port: 5353 } }),
      isEgressDenied("192.0.2.53", 5353, "Deno.resolveDns"),
    );
    assert.equal(guard.denied, 2);
    assert.equal(denials.length, 2);
  });
});

function failingOnDenied(): never {
  throw new Error("timeline is down");
}

Deno.test("installNetworkGuard() logs a failing onDenied and still throws EgressDeniedError", async () => {
  const server = startServer();
  const logged: unknown[][] = [];
  const consoleError = console.error;
  console.error = (...args: unknown[]) => void logged.push(args);
  try {
    const { port } = server;
    await withGuard({ allow: [OTHER], onDenied: failingOnDenied }, async () => {
      await assert.rejects(fetch(`http://127.0.0.1:${port}/`), EgressDeniedError);
      assert.throws(() => new WebSocket(`ws://127.0.0.1:${port}`), EgressDeniedError);
    });
    const onDenied = async () => {
      await Promise.resolve();
      throw new Error("timeline is down, asynchronously");
    };
    await withGuard({ allow: [OTHER], onDenied }, async () => {
      await assert.rejects(Deno.connect({ port }), EgressDeniedError);
      await settle(10);
    });
    assert.equal(logged.length, 3);
    for (const args of logged) {
      assert.match(String(args[0]), /onDenied callback failed/);
      assert.match(String(args[1]), /timeline is down/);
    }
    await settle();
    assert.equal(server.accepted, 0);
  } finally {
    console.error = consoleError;
    await server.close();
  }
});

Deno.test("installNetworkGuard() reports a failing onDenied to its logger, if any", async () => {
  const entries: Array<[string, Record<string, unknown> | undefined]> = [];
  const logger = {
    error: (msg: string, fields?: Record<string, unknown>) => entries.push([msg, fields]),
  };
  await withGuard({ onDenied: failingOnDenied, logger }, async () => {
    await assert.rejects(fetch("http://127.0.0.1:9/"), EgressDeniedError);
  });
  assert.equal(entries.length, 1);
  const [msg, fields] = entries[0]!;
  assert.match(msg, /onDenied callback failed/);
  assert.match(String(fields?.error), /timeline is down/);
  assert.deepEqual((fields?.denial as EgressDenial).port, 9);

  const brokenLogger = {
    error: () => {
      throw new Error("logger is down");
    },
  };
  await withGuard({ onDenied: failingOnDenied, logger: brokenLogger }, async () => {
    await assert.rejects(fetch("http://127.0.0.1:9/"), EgressDeniedError);
  });
});

Deno.test("installNetworkGuard() refuses Deno.connectQuic, WebSocketStream and UDP sends under --unstable-net", async () => {
  const module = new URL("../../src/runtime/network_guard.ts", import.meta.url).href;
  const script = `
    const { installNetworkGuard } = await import(${JSON.stringify(module)});
    const tcp = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    let accepted = 0;
    const accepting = (async () => { try { for await (const c of tcp) { accepted++; c.close(); } } catch {} })();
    const udp = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
    let datagrams = 0;
    const receiving = (async () => { try { for await (const _ of udp) datagrams++; } catch {} })();
    const to = { transport: "udp", hostname: "127.0.0.1", port: udp.addr.port };
    const refused = [];
    const record = (e) => refused.push([e.name, e.host, e.port, e.api]);
    const guard = installNetworkGuard({ allow: [] });
    const sender = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
    try { new WebSocketStream("ws://127.0.0.1:" + tcp.addr.port); } catch (e) { record(e); }
    try { await Deno.connectQuic({ hostname: "127.0.0.1", port: udp.addr.port, alpnProtocols: ["h3"] }); } catch (e) { record(e); }
    try { await sender.send(new Uint8Array([1]), to); } catch (e) { record(e); }
    await new Promise((r) => setTimeout(r, 200));
    const before = { accepted, datagrams, denied: guard.denied };
    guard.uninstall();
    const allowing = installNetworkGuard({ allow: ["127.0.0.1:" + udp.addr.port] });
    await sender.send(new Uint8Array([2]), to);
    await new Promise((r) => setTimeout(r, 200));
    allowing.uninstall();
    console.log(JSON.stringify({ refused, tcpPort: tcp.addr.port, udpPort: udp.addr.port, before, datagrams }));
    sender.close(); udp.close(); tcp.close();
    await Promise.all([accepting, receiving]);
  `;
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["eval", "--unstable-net", script],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stderr = new TextDecoder().decode(output.stderr);
  assert.equal(output.code, 0, stderr);
  const result = JSON.parse(new TextDecoder().decode(output.stdout));
  assert.deepEqual(result.refused, [
    ["EgressDeniedError", "127.0.0.1", result.tcpPort, "WebSocketStream"],
    ["EgressDeniedError", "127.0.0.1", result.udpPort, "Deno.connectQuic"],
    ["EgressDeniedError", "127.0.0.1", result.udpPort, "Deno.DatagramConn.send"],
  ]);
  assert.deepEqual(result.before, { accepted: 0, datagrams: 0, denied: 3 });
  assert.equal(result.datagrams, 1);
});
