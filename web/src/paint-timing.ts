/**
 * How long a streamed piece of a reply takes from arriving over the network to being on screen. Each
 * delta's arrival time is kept until the render that shows it; the conversation renders streamed text
 * inside a requestAnimationFrame callback (synchronously, with flushSync), so that frame paints it, and
 * a timeout queued from there runs right after that paint: one performance measure
 * `parley:delta-to-paint` per delta is recorded then. The browser test reads them, as can anyone in
 * DevTools (performance.getEntriesByName('parley:delta-to-paint')).
 */

/** The name of the performance measures. */
export const DELTA_TO_PAINT = 'parley:delta-to-paint';

const waiting: number[] = [];

/** Notes that a delta arrived at `arrivedAt` (performance.now()). */
export function noteDeltaArrival(arrivedAt: number): void {
  waiting.push(arrivedAt);
}

function measureAfterThisFrame(arrivals: number[]): void {
  setTimeout(() => {
    const end = performance.now();
    for (const start of arrivals) performance.measure(DELTA_TO_PAINT, { start, end });
  }, 0);
}

/** Call inside a requestAnimationFrame callback, right after the DOM shows every delta noted so far. */
export function renderedInFrame(): void {
  if (waiting.length > 0) measureAfterThisFrame(waiting.splice(0));
}

/** Call after a render outside a frame callback (the end of a turn): measured after the next frame. */
export function renderedOutsideFrame(): void {
  if (waiting.length === 0) return;
  const arrivals = waiting.splice(0);
  requestAnimationFrame(() => measureAfterThisFrame(arrivals));
}
