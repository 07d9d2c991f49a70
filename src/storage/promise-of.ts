/**
 * `run()`'s promise, or a rejected one when `run` throws at once: a storage layer that passes a call on
 * with `then` (not an async function, whose promises add up on a chat turn's path) still answers every
 * failure as a rejection.
 */
export function promiseOf<T>(run: () => Promise<T>): Promise<T> {
  try {
    return run();
  } catch (error) {
    return Promise.reject(error);
  }
}
