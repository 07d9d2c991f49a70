/** The text behind `parley config print`: the effective config with secrets masked. */

import { maskSecrets } from './config-mask.ts';
import { isPlainObject, pointerSegment } from './config-merge.ts';

export interface FormatConfigOptions {
  /**
   * Where each value came from (from `resolveConfig`). When given, the output is one line per value,
   * `/server/port = 3000  # config/default.json`, instead of JSON.
   */
  sources?: ReadonlyMap<string, string>;
}

/** The effective config as pretty JSON (or annotated lines, given sources), secrets shown as "****". */
export function formatConfigForPrint(config: object, options: FormatConfigOptions = {}): string {
  const masked = maskSecrets(config);
  if (options.sources === undefined) return `${JSON.stringify(masked, null, 2)}\n`;
  const lines: string[] = [];
  collectLines(masked, '', options.sources, lines);
  return `${lines.join('\n')}\n`;
}

// Arrays print whole: they replace rather than merge, so one source owns the entire array.
function collectLines(
  value: unknown,
  pointer: string,
  sources: ReadonlyMap<string, string>,
  lines: string[],
): void {
  if (isPlainObject(value) && Object.keys(value).length > 0) {
    for (const [key, child] of Object.entries(value)) {
      collectLines(child, `${pointer}/${pointerSegment(key)}`, sources, lines);
    }
    return;
  }
  lines.push(`${pointer} = ${JSON.stringify(value)}  # ${sources.get(pointer) ?? 'schema default'}`);
}
