import assert from "node:assert/strict";
import { DEFAULT_RETRY_POLICY, RetryPolicy } from "../../src/job/retry_policy.ts";
import { withStore } from "../_store.ts";

Deno.test("RetryPolicy() fills in the SPEC defaults", () => {
  assert.deepEqual(new RetryPolicy().toJSON(), DEFAULT_RETRY_POLICY);
  assert.deepEqual(DEFAULT_RETRY_POLICY, {
    maxRetries: 3,
    backoff: "exponential",
    initialDelayMs: 1000,
    maxDelayMs: 300000,
    multiplier: 2,
    jitter: 0.1,
  });
});

Deno.test("RetryPolicy.delayMs() follows fixed, linear and exponential backoff, capped", () => {
  const fixed = new RetryPolicy({ backoff: "fixed", initialDelayMs: 500, jitter: 0 });
  assert.deepEqual([1, 2, 3].map((n) => fixed.delayMs(n)), [500, 500, 500]);
  const linear = new RetryPolicy({ backoff: "linear", initialDelayMs: 500, jitter: 0 });
  assert.deepEqual([1, 2, 3].map((n) => linear.delayMs(n)), [500, 1000, 1500]);
  const exponential = new RetryPolicy({
    initialDelayMs: 1000,
    multiplier: 3,
    maxDelayMs: 20000,
    jitter: 0,
  });
  assert.deepEqual([1, 2, 3, 4].map((n) => exponential.delayMs(n)), [1000, 3000, 9000, 20000]);
});

Deno.test("RetryPolicy() refuses out-of-range fields", () => {
  assert.throws(() => new RetryPolicy({ maxRetries: 101 }));
  assert.throws(() => new RetryPolicy({ multiplier: 0.5 }));
  assert.throws(() => new RetryPolicy({ jitter: 1.5 }));
  assert.throws(() => new RetryPolicy({ initialDelayMs: -1 }));
  assert.throws(() => new RetryPolicy({ backoff: "random" as "fixed" }));
  assert.throws(() => new RetryPolicy().delayMs(0), RangeError);
});

Deno.test("RetryPolicy.canRetry() allows maxRetries re-runs after the first", () => {
  const policy = new RetryPolicy({ maxRetries: 3 });
  assert.deepEqual([1, 2, 3, 4].map((n) => policy.canRetry(n)), [true, true, true, false]);
});

Deno.test("RetryPolicy.delayMs() keeps jitter within ± jitter * delay and uses both sides", () => {
  const policy = new RetryPolicy({ backoff: "fixed", initialDelayMs: 10_000, jitter: 0.2 });
  const samples = Array.from({ length: 5000 }, () => policy.delayMs(1));
  assert.ok(Math.min(...samples) >= 8000, `min ${Math.min(...samples)}`);
  assert.ok(Math.max(...samples) <= 12000, `max ${Math.max(...samples)}`);
  assert.ok(
    samples.some((s) => s < 9000) && samples.some((s) => s > 11000),
    "spread reaches both sides",
  );
  const mean = samples.reduce((a, b) => a + b, 0) / samples.length;
  assert.ok(Math.abs(mean - 10_000) < 150, `mean ${mean} near the base delay`);
});

Deno.test("jobengine.retry_delay() equals RetryPolicy.delayMs() for every strategy and n = 1..20 with jitter 0", async () => {
  await withStore(async ({ db }) => {
    const policies = [
      { backoff: "fixed", initialDelayMs: 1500, jitter: 0 },
      { backoff: "linear", initialDelayMs: 700, maxDelayMs: 9000, jitter: 0 },
      {
        backoff: "exponential",
        initialDelayMs: 100,
        multiplier: 1.5,
        maxDelayMs: 200_000,
        jitter: 0,
      },
      { backoff: "exponential", initialDelayMs: 1000, multiplier: 2, jitter: 0 },
    ] as const;
    for (const input of policies) {
      const policy = new RetryPolicy(input);
      const rows = await db.query<{ n: number; ms: string }>(
        `select n, (extract(epoch from jobengine.retry_delay($1::jsonb, n)) * 1000)::numeric(20,3)::text as ms
           from generate_series(1, 20) n order by n`,
        [JSON.stringify(input)],
      );
      assert.equal(rows.length, 20);
      for (const row of rows) {
        assert.equal(Number(row.ms), policy.delayMs(row.n), `${input.backoff} n=${row.n}`);
      }
    }
  });
});

Deno.test("jobengine.retry_delay() keeps jitter within bounds", async () => {
  await withStore(async ({ db }) => {
    const rows = await db.query<{ lo: number; hi: number; mean: number }>(
      `select min(ms)::float8 as lo, max(ms)::float8 as hi, avg(ms)::float8 as mean from (
         select extract(epoch from jobengine.retry_delay('{"backoff":"fixed","initialDelayMs":10000,"jitter":0.2}', 1)) * 1000 as ms
           from generate_series(1, 5000)) s`,
    );
    const { lo, hi, mean } = rows[0]!;
    assert.ok(lo >= 8000 && lo < 9000, `min ${lo}`);
    assert.ok(hi <= 12000 && hi > 11000, `max ${hi}`);
    assert.ok(Math.abs(mean - 10000) < 150, `mean ${mean}`);
  });
});
