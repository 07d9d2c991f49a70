/** Sizes written in config as text ("512MB", "100 KB", "2GiB"), as `resource_limits` uses them. */

const UNITS: Record<string, number> = { '': 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3, T: 1024 ** 4 };
const SIZE = /^(\d+(?:\.\d+)?)\s*([KMGT]?)i?B$/i;

/**
 * Bytes in a size such as "512MB" (binary units: 1 KB = 1024 bytes, as memory limits are meant; "KiB"
 * is accepted as the same). Throws on anything else — config validation has already rejected those.
 */
export function parseByteSize(text: string): number {
  const match = SIZE.exec(text.trim());
  if (match === null) throw new TypeError(`not a size: "${text}" (expected e.g. "512MB")`);
  const [, amount, unit] = match as unknown as [string, string, string];
  return Math.round(Number(amount) * UNITS[unit.toUpperCase()]!);
}
