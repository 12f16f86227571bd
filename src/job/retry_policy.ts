/**
 * The retry policy: how many times a failed job runs again and how long it waits first.
 *
 * The SQL twin is `jobengine.retry_delay(policy, n)` (with `jobengine.retry_base_delay_ms`);
 * with `jitter = 0` both give the same delay for every n (a parity test proves it).
 *
 * @module
 */
import * as v from "valibot";

/** The backoff strategies. */
export const BACKOFF_STRATEGIES = ["fixed", "linear", "exponential"] as const;

/** A retry policy as clients send it: every field optional, unknown fields refused. */
export const RetryPolicyInput = v.strictObject({
  maxRetries: v.optional(v.pipe(v.number(), v.integer(), v.minValue(0), v.maxValue(100))),
  backoff: v.optional(v.picklist(BACKOFF_STRATEGIES)),
  initialDelayMs: v.optional(v.pipe(v.number(), v.minValue(0), v.maxValue(86_400_000))),
  maxDelayMs: v.optional(v.pipe(v.number(), v.minValue(0), v.maxValue(31_536_000_000))),
  multiplier: v.optional(v.pipe(v.number(), v.minValue(1), v.maxValue(100))),
  jitter: v.optional(v.pipe(v.number(), v.minValue(0), v.maxValue(1))),
});

/** A retry policy as clients send it. */
export type RetryPolicyInput = v.InferOutput<typeof RetryPolicyInput>;

/** A complete retry policy, every field set. */
export interface RetryPolicyOptions {
  /** Retries after the first run: 0..100. */
  maxRetries: number;
  /** How the delay grows with each retry. */
  backoff: (typeof BACKOFF_STRATEGIES)[number];
  /** The first delay, in milliseconds. */
  initialDelayMs: number;
  /** The largest delay, in milliseconds. */
  maxDelayMs: number;
  /** The growth factor of exponential backoff (>= 1). */
  multiplier: number;
  /** The spread, 0..1: the delay varies uniformly within ± jitter * delay. */
  jitter: number;
}

/** The defaults of SPEC section 2. */
export const DEFAULT_RETRY_POLICY: Readonly<RetryPolicyOptions> = {
  maxRetries: 3,
  backoff: "exponential",
  initialDelayMs: 1000,
  maxDelayMs: 300_000,
  multiplier: 2,
  jitter: 0.1,
};

/** A retry policy with its delay function. */
export class RetryPolicy implements RetryPolicyOptions {
  readonly maxRetries: number;
  readonly backoff: RetryPolicyOptions["backoff"];
  readonly initialDelayMs: number;
  readonly maxDelayMs: number;
  readonly multiplier: number;
  readonly jitter: number;

  /** Creates a policy from a partial input; throws a `v.ValiError` when a field is out of range. */
  constructor(input: RetryPolicyInput = {}) {
    const parsed = v.parse(RetryPolicyInput, input);
    const full = { ...DEFAULT_RETRY_POLICY, ...parsed };
    this.maxRetries = full.maxRetries;
    this.backoff = full.backoff;
    this.initialDelayMs = full.initialDelayMs;
    this.maxDelayMs = full.maxDelayMs;
    this.multiplier = full.multiplier;
    this.jitter = full.jitter;
  }

  /** The delay before retry `n` (1-based) without jitter, in whole milliseconds. */
  baseDelayMs(n: number): number {
    if (!Number.isInteger(n) || n < 1) {
      throw new RangeError(`Retry number must be an integer >= 1: got ${n}`);
    }
    let delay: number;
    switch (this.backoff) {
      case "fixed":
        delay = this.initialDelayMs;
        break;
      case "linear":
        delay = this.initialDelayMs * n;
        break;
      case "exponential":
        // the same guard as SQL: past e^600 the delay is beyond any cap (and 0 * Infinity is NaN)
        delay = this.initialDelayMs === 0
          ? 0
          : (n - 1) * Math.log(this.multiplier) > 600
          ? Infinity
          : this.initialDelayMs * Math.pow(this.multiplier, n - 1);
        break;
    }
    return Math.floor(Math.min(delay, this.maxDelayMs));
  }

  /** The delay before retry `n` (1-based), spread uniformly within ± jitter * delay. */
  delayMs(n: number, random: () => number = Math.random): number {
    const base = this.baseDelayMs(n);
    if (this.jitter === 0) return base;
    return Math.max(0, Math.floor(base + (random() * 2 - 1) * this.jitter * base));
  }

  /** Whether a job that has run `attempt` times may run again. */
  canRetry(attempt: number): boolean {
    return attempt <= this.maxRetries;
  }

  /** The policy as stored on the job (`retry_policy` jsonb). */
  toJSON(): RetryPolicyOptions {
    return {
      maxRetries: this.maxRetries,
      backoff: this.backoff,
      initialDelayMs: this.initialDelayMs,
      maxDelayMs: this.maxDelayMs,
      multiplier: this.multiplier,
      jitter: this.jitter,
    };
  }
}
