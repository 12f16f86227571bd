/** The `host:port` of a `postgres://` URL (for the sealed-mode allowlists), if it names one. */
export function databaseEndpoint(url: string | undefined): string | null {
  if (!url) return null;
  try {
    const parsed = new URL(url);
    if (!parsed.hostname) return null;
    return `${parsed.hostname}:${parsed.port || "5432"}`;
  } catch {
    return null;
  }
}
