/**
 * Model output as safe HTML. Replies are Markdown written by a model that may have been told to attack
 * the page, so every reply goes through several locks. marked turns Markdown into HTML, but HTML the model
 * wrote itself is shown as text, as other chat products do: `<script>` or `<img onerror>` in a reply never
 * becomes an element, not even in a detached document (Chromium reports a CSP violation just for parsing
 * an inline handler there). DOMPurify then cleans what Markdown produced: no scripts, handlers, styles,
 * forms or frames, no URL scheme but http(s) and mailto. Links open in a new tab without a referrer, and
 * images become a note unless they are inline data: pictures (a remote image would tell its server who
 * reads the reply, and when). The page's Content-Security-Policy (src/server/web-client.ts) is the last
 * lock behind these.
 */

import DOMPurify, { type Config } from 'dompurify';
import { Marked } from 'marked';

type Highlighter = (code: string, language: string | undefined, autoDetect: boolean) => string | undefined;

// Guessing the language of an unlabelled block runs every grammar over it: fine once, too slow to redo
// on every frame of a streaming reply. Set per render by renderMarkdown.
let autoDetect = true;

let highlighter: Highlighter | undefined;
let highlighterLoading: Promise<void> | undefined;
const highlighterListeners = new Set<() => void>();
let highlighterVersion = 0;

/** Starts loading the highlighter chunk (once); listeners are told when it is ready. */
function loadHighlighter(): void {
  if (highlighterLoading !== undefined) return;
  highlighterLoading = import('./highlight.ts').then(
    (module) => {
      highlighter = module.highlight;
      highlighterVersion++;
      for (const listener of highlighterListeners) listener();
    },
    () => {
      // Offline or a stale deployment: code stays plain, and the next code block tries again.
      highlighterLoading = undefined;
    },
  );
}

/**
 * Loads the highlighter while the browser is idle, so the first reply with code does not wait for it (it
 * stays out of the initial bundle all the same).
 */
export function preloadHighlighter(): void {
  const idle = window.requestIdleCallback ?? ((callback: () => void) => setTimeout(callback, 1500));
  idle(() => loadHighlighter());
}

/** For useSyncExternalStore: re-render code blocks once highlighting is available. */
export const highlighterStore = {
  subscribe(listener: () => void): () => void {
    highlighterListeners.add(listener);
    return () => highlighterListeners.delete(listener);
  },
  getSnapshot: () => highlighterVersion,
};

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (character) => `&#${character.charCodeAt(0)};`);
}

const marked = new Marked({
  gfm: true,
  breaks: false,
  renderer: {
    html({ text, block }) {
      return block ? `<p>${escapeHtml(text)}</p>\n` : escapeHtml(text);
    },
    code({ text, lang }) {
      const language = (lang ?? '').trim().split(/\s+/, 1)[0] ?? '';
      if (highlighter === undefined) loadHighlighter();
      const highlighted = highlighter?.(text, language || undefined, autoDetect);
      const className = language ? ` class="hljs language-${escapeHtml(language)}"` : ' class="hljs"';
      return `<pre><code${className}>${highlighted ?? escapeHtml(text)}</code></pre>\n`;
    },
  },
});

const SAFE_LINK = /^(https?:|mailto:)/i;
const INLINE_IMAGE = /^data:image\/(png|gif|jpe?g|webp);/i;

const purifyConfig: Config & { RETURN_DOM_FRAGMENT: true } = {
  USE_PROFILES: { html: true },
  FORBID_TAGS: [
    'style',
    'form',
    'input',
    'button',
    'textarea',
    'select',
    'option',
    'iframe',
    'frame',
    'object',
    'embed',
    'link',
    'meta',
    'base',
    'video',
    'audio',
    'source',
    'picture',
    'dialog',
  ],
  FORBID_ATTR: ['style', 'srcset', 'action', 'formaction', 'id', 'name'],
  ALLOW_DATA_ATTR: false,
  RETURN_DOM_FRAGMENT: true,
};

function fixLinks(root: DocumentFragment): void {
  for (const link of root.querySelectorAll('a')) {
    const href = link.getAttribute('href')?.trim() ?? '';
    if (!SAFE_LINK.test(href)) {
      // Keep the words, drop the link: `javascript:`, `data:`, relative and fragment URLs go nowhere.
      link.removeAttribute('href');
      link.classList.add('blocked-link');
      link.title = 'Link removed: only http, https and mailto links are kept';
      continue;
    }
    link.target = '_blank';
    link.rel = 'noopener noreferrer nofollow';
  }
}

function blockImages(root: DocumentFragment): void {
  for (const image of root.querySelectorAll('img')) {
    const source = image.getAttribute('src')?.trim() ?? '';
    if (INLINE_IMAGE.test(source)) continue;
    const note = document.createElement('span');
    note.className = 'blocked-image';
    const alt = image.getAttribute('alt')?.trim();
    note.textContent = `[image not loaded${alt ? `: ${alt}` : ''}]`;
    note.title = source ? `Remote image blocked: ${source}` : 'Image blocked';
    image.replaceWith(note);
  }
}

function decorateCodeBlocks(root: DocumentFragment): void {
  for (const block of root.querySelectorAll('pre')) {
    const code = block.querySelector('code');
    const language = /language-([\w+#.-]+)/.exec(code?.className ?? '')?.[1];
    const frame = document.createElement('div');
    frame.className = 'code-block';
    const bar = document.createElement('div');
    bar.className = 'code-bar';
    const label = document.createElement('span');
    label.textContent = language ?? 'code';
    const copy = document.createElement('button');
    copy.type = 'button';
    copy.className = 'copy-code';
    copy.textContent = 'Copy';
    copy.setAttribute('aria-label', `Copy ${language ?? ''} code`.replace('  ', ' '));
    bar.append(label, copy);
    block.replaceWith(frame);
    frame.append(bar, block);
  }
}

/**
 * The top-level blocks of a Markdown text (paragraphs, lists, code blocks…), as their source text. A reply
 * still streaming is rendered block by block: every block but the last is finished and its HTML can be
 * kept, so a frame re-renders only the growing end instead of the whole reply.
 */
export function markdownBlocks(markdown: string): string[] {
  const blocks: string[] = [];
  for (const token of marked.lexer(markdown)) {
    // Blank lines belong to the block before them (they never render on their own).
    if (token.type === 'space' && blocks.length > 0) blocks[blocks.length - 1] += token.raw;
    else blocks.push(token.raw);
  }
  return blocks;
}

/**
 * Turns the `[n]` markers of a reply that cites `sources` passages into buttons (`data-source="n"`) that
 * open source n. Made after sanitizing, from text nodes only, and never inside code or links.
 */
function linkCitationMarkers(root: DocumentFragment, sources: number): void {
  if (sources === 0) return;
  const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
  const nodes: Text[] = [];
  for (let node = walker.nextNode(); node !== null; node = walker.nextNode()) {
    if (/\[\d+\]/.test(node.nodeValue ?? '') && !node.parentElement?.closest('pre, code, a'))
      nodes.push(node as Text);
  }
  for (const node of nodes) {
    const text = node.nodeValue ?? '';
    const pieces: Array<string | HTMLButtonElement> = [];
    let last = 0;
    for (const match of text.matchAll(/\[(\d+)\]/g)) {
      const number = Number(match[1]);
      if (number < 1 || number > sources) continue;
      pieces.push(text.slice(last, match.index));
      const button = document.createElement('button');
      button.type = 'button';
      button.className = 'cite-ref';
      button.dataset.source = String(number);
      button.textContent = `[${number}]`;
      button.setAttribute('aria-label', `Source ${number}`);
      pieces.push(button);
      last = match.index + match[0].length;
    }
    if (pieces.length === 0) continue;
    pieces.push(text.slice(last));
    node.replaceWith(...pieces);
  }
}

/**
 * Safe HTML for a Markdown reply (see the file comment for what is removed). `streaming`: the text is
 * still growing, so unlabelled code is left plain until the end. `sources`: how many passages the reply
 * cites, whose `[n]` markers become buttons.
 */
export function renderMarkdown(
  markdown: string,
  options: { streaming?: boolean; sources?: number } = {},
): string {
  autoDetect = options.streaming !== true;
  const html = marked.parse(markdown, { async: false });
  const fragment = DOMPurify.sanitize(html, purifyConfig);
  fixLinks(fragment);
  blockImages(fragment);
  decorateCodeBlocks(fragment);
  linkCitationMarkers(fragment, options.sources ?? 0);
  const container = document.createElement('div');
  container.append(fragment);
  return container.innerHTML;
}
