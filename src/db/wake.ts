/**
 * Trailing wake-ups for NOTIFY listeners.
 *
 * `jobengine._notify` lets at most two open transactions at a time notify a channel (so NOTIFY
 * never serialises the engine's commits); transactions that committed just after the ones that
 * notified are not announced. A listener therefore re-checks a few times shortly after each
 * NOTIFY: by then those transactions have committed and their rows are visible. Listeners read
 * rows, never payloads, so an extra check costs one cheap query and can never deliver twice.
 *
 * @module
 */

/** The default re-checks after a NOTIFY, in milliseconds after it. */
export const DEFAULT_TRAIL_MS: readonly number[] = [5, 25, 100, 400];

/** A wake-up that repeats on a trail after each poke. */
export interface TrailingWaker {
  /** Wakes now, and again at each trail delay (a new poke restarts the trail). */
  poke(): void;
  /** Cancels the pending trail. */
  stop(): void;
}

/** Creates a {@linkcode TrailingWaker} around `wake`. */
export function trailingWaker(
  wake: () => void,
  trailMs: readonly number[] = DEFAULT_TRAIL_MS,
): TrailingWaker {
  const timers = new Set<ReturnType<typeof setTimeout>>();
  function stop(): void {
    for (const timer of timers) clearTimeout(timer);
    timers.clear();
  }
  return {
    poke() {
      stop();
      wake();
      for (const delay of trailMs) {
        const timer = setTimeout(() => {
          timers.delete(timer);
          wake();
        }, delay);
        timers.add(timer);
      }
    },
    stop,
  };
}
