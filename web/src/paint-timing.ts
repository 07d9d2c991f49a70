/**
 * How long a streamed piece of a reply takes from arriving over the network to being on screen. Each
 * delta's arrival time is kept until the render that shows it commits; then, after the next frame (a
 * timeout queued from requestAnimationFrame runs once that frame has painted), one performance measure
 * `parley:delta-to-paint` per delta is recorded. The browser test reads them; so can anyone in DevTools.
 */

/** The name of the performance measures. */
export const DELTA_TO_PAINT = 'parley:delta-to-paint';

const waiting: number[] = [];

/** Notes that a delta arrived at `arrivedAt` (performance.now()). */
export function noteDeltaArrival(arrivedAt: number): void {
  waiting.push(arrivedAt);
}

/** Called after a render that shows every delta noted so far has committed. */
export function notePainted(): void {
  if (waiting.length === 0) return;
  const arrivals = waiting.splice(0);
  requestAnimationFrame(() => {
    setTimeout(() => {
      const end = performance.now();
      for (const start of arrivals) performance.measure(DELTA_TO_PAINT, { start, end });
    }, 0);
  });
}
