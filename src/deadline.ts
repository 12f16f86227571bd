/**
 * Waiting for work with a bound: used where the engine must answer (or stop) on time while the
 * database or a client may not (the API's request timeout, `/readyz`, `/metrics`, the shutdown).
 *
 * @module
 */

/**
 * `work`'s value, or `onTimeout()`'s when `ms` pass first. The timer is cleared either way;
 * `work` is not cancelled (it goes on, its result unused), and its rejection, should it lose the
 * race, is the caller's to have handled.
 */
export async function withDeadline<T, U>(
  work: Promise<T>,
  ms: number,
  onTimeout: () => U,
): Promise<T | U> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      work,
      new Promise<U>((resolve) => {
        timer = setTimeout(() => resolve(onTimeout()), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}
