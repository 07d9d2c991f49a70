/**
 * Code highlighting, loaded on demand: highlight.js with its common languages is a separate chunk that
 * the page fetches the first time a reply holds a code block, so it costs nothing at start.
 */

import hljs from 'highlight.js/lib/common';

/** The highlighted HTML of `code` (hljs escapes the code itself), or `undefined` for an unknown language. */
export function highlight(code: string, language: string | undefined, autoDetect = true): string | undefined {
  const name = language?.toLowerCase();
  if (name && hljs.getLanguage(name))
    return hljs.highlight(code, { language: name, ignoreIllegals: true }).value;
  // Auto-detection is slow on long blocks and often wrong on short ones: only for mid-sized unlabelled code.
  if (autoDetect && !name && code.length > 20 && code.length < 5000) return hljs.highlightAuto(code).value;
  return undefined;
}
