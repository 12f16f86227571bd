/**
 * JSON numbers that JavaScript cannot hold exactly. A payload parsed with `JSON.parse` and
 * written on would store such a number altered (12345678901234567890 as 12345678901234567000,
 * 1e400 as null); the HTTP API and the CLI refuse them instead.
 *
 * @module
 */

/** `digits` and a power of ten: the decimal a JSON number's text denotes, for comparison. */
function decimalOf(text: string): string | null {
  const match = /^-?(\d+)(?:\.(\d+))?(?:[eE]([+-]?\d+))?$/.exec(text);
  if (!match) return null;
  const fraction = match[2] ?? "";
  let digits = (match[1]! + fraction).replace(/^0+/, "");
  let exponent = Number(match[3] ?? 0) - fraction.length;
  const trimmed = digits.replace(/0+$/, "");
  exponent += digits.length - trimmed.length;
  digits = trimmed;
  if (digits === "") return "0";
  return `${text.startsWith("-") ? "-" : ""}${digits}e${exponent}`;
}

/**
 * The first number in a JSON text that JavaScript cannot hold exactly (an integer beyond 2^53,
 * more significant digits than a double keeps, out of range), or null. Such a value would be
 * stored altered (12345678901234567890 as 12345678901234567000, 1e400 as null), so it is refused.
 * Only texts with 16 digits in a row (a decimal point between them allowed) or a 3-digit
 * exponent are parsed again to look.
 */
export function inexactNumber(text: string): string | null {
  if (!/\d(?:\.?\d){15}|[eE][+-]?\d{3}/.test(text)) return null;
  let found: string | null = null;
  JSON.parse(
    text,
    function (this: unknown, _key: string, value: unknown, context?: { source?: string }) {
      if (found === null && typeof value === "number" && typeof context?.source === "string") {
        const source = context.source;
        if (!Number.isFinite(value) || decimalOf(source) !== decimalOf(String(value))) {
          found = source;
        }
      }
      return value;
    },
  );
  return found;
}
