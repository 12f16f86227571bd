/** Test fixture: a real socket for the sealed-mode proofs. */

/** A TCP listener on 127.0.0.1 at a free port that counts connections and answers HTTP 200. */
export function countingListener(): { port: number; count(): number; close(): Promise<void> } {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  let count = 0;
  const conns = new Set<Deno.Conn>();
  const serving = (async () => {
    try {
      for await (const conn of listener) {
        count++;
        conns.add(conn);
        (async () => {
          try {
            await conn.read(new Uint8Array(4096));
            await conn.write(
              new TextEncoder().encode(
                "HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok",
              ),
            );
          } catch {
            // the client went away
          } finally {
            conns.delete(conn);
            try {
              conn.close();
            } catch { /* closed */ }
          }
        })();
      }
    } catch {
      // closed
    }
  })();
  return {
    port: (listener.addr as Deno.NetAddr).port,
    count: () => count,
    async close() {
      listener.close();
      for (const conn of conns) {
        try {
          conn.close();
        } catch { /* closed */ }
      }
      await serving;
    },
  };
}
