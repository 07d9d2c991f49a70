import type { LanguageModelV3Prompt } from '@ai-sdk/provider';
import type { ModelMessage } from 'ai';
import type { Message } from '../../core/types.ts';
import { type PlainTextPromptMessage, plainTextPromptMessage } from '../../llm/plain-text-prompt.ts';
import { replacedBy } from './replies.ts';

/**
 * Which history goes to the model: the newest messages whose tokens, with the system prompt's, fit the
 * budget. Tokens are counted with gpt-tokenizer (o200k_base, the GPT-4o/GPT-5 BPE). Other models tokenize
 * differently, but a real BPE count is within a few per cent for them, where characters/4 can be off by 2x
 * (code, non-Latin scripts). The tokenizer's ranks take about a second and 60 MB of memory to load, so a
 * conversation whose UTF-8 size alone fits the budget (a byte-level BPE token is at least one byte) is sent
 * whole without counting; the tokenizer is loaded the first time a conversation outgrows that.
 */

/** Counts the tokens of a text. */
export type TokenCounter = (text: string) => number;

/** The chat format wraps each message in role markers (`<|im_start|>role … <|im_end|>`): about 4 tokens. */
export const TOKENS_PER_MESSAGE = 4;
/** The reply is primed with `<|im_start|>assistant`: about 3 tokens. */
export const TOKENS_PER_REPLY = 3;

let counter: Promise<TokenCounter> | undefined;
let loadedCounter: TokenCounter | undefined;

/**
 * gpt-tokenizer's counter, loaded on first use (about a second and 60 MB): only conversations too long for
 * `selectWithoutCounting` and turns with knowledge passages need it.
 */
export function loadTokenCounter(): Promise<TokenCounter> {
  counter ??= import('gpt-tokenizer').then((tokenizer) => {
    loadedCounter = (text: string) => tokenizer.countTokens(text);
    return loadedCounter;
  });
  return counter;
}

/** The counter once `loadTokenCounter` has loaded it, to be used without a wait; before, undefined. */
export function tokenCounterIfLoaded(): TokenCounter | undefined {
  return loadedCounter;
}

/** What `selectHistory` chose. */
export interface SelectedHistory {
  messages: ModelMessage[];
  /** The same messages in the model's prompt form (`LlmRequest.prompt`): kept with the window, not converted per turn. */
  prompt: LanguageModelV3Prompt;
  /** Tokens of the system prompt and the chosen messages, framing included. */
  tokens: number;
  /** Messages of the log left out (too old for the budget, or failed replies). */
  omitted: number;
  /** Index of the oldest message the window looked at (where the history cache must keep messages from). */
  start: number;
  /**
   * The window reached the oldest message the sequence holds (its `first` > 0) with the budget not yet
   * spent: older ones might fit, so choose again from the whole log.
   */
  truncated: boolean;
}

/** Messages by position, oldest first: an array, or a session log as the history cache loaded it. */
export interface MessageSequence {
  readonly count: number;
  /** Index of the oldest message held (a cached log may have dropped older ones); 0 when absent. */
  readonly first?: number;
  /** The same object for each load of one conversation, when there is one (its window is kept by it). */
  readonly identity?: object;
  at(index: number): Message;
}

export interface SelectHistoryOptions {
  /** The session's messages, oldest first; the last one is the user message of this turn. */
  messages: readonly Message[] | MessageSequence;
  system: string | undefined;
  budget: number;
  countTokens: TokenCounter;
}

/** What a message costs in a window: its tokens by a counter, or their bound. */
type MessageCost = (message: Message) => number;

// A message's text never changes, so its count is kept for the message object's life: the history cache
// hands the same objects to every turn of a session, and each message is tokenized once per node. One
// cost function per counter, so a conversation's window (below) is found again by it.
const counters = new WeakMap<TokenCounter, MessageCost>();

function messageCounter(countTokens: TokenCounter): MessageCost {
  const known = counters.get(countTokens);
  if (known !== undefined) return known;
  const cache = new WeakMap<Message, number>();
  const cost: MessageCost = (message) => {
    let tokens = cache.get(message);
    if (tokens === undefined) {
      tokens = countTokens(message.content) + TOKENS_PER_MESSAGE;
      cache.set(message, tokens);
    }
    return tokens;
  };
  counters.set(countTokens, cost);
  return cost;
}

// The persona's system prompt is the same text turn after turn: its count is kept too (a few prompts).
const systemCounts = new WeakMap<TokenCounter, Map<string, number>>();
const MAX_SYSTEM_PROMPTS = 100;

function systemTokens(countTokens: TokenCounter, system: string): number {
  let known = systemCounts.get(countTokens);
  if (known === undefined) {
    known = new Map();
    systemCounts.set(countTokens, known);
  }
  let tokens = known.get(system);
  if (tokens === undefined) {
    tokens = countTokens(system) + TOKENS_PER_MESSAGE;
    if (known.size >= MAX_SYSTEM_PROMPTS) known.clear();
    known.set(system, tokens);
  }
  return tokens;
}

// A message's UTF-8 size, kept like its token count.
const sizes = new WeakMap<Message, number>();

/** An upper bound of a message's tokens (framing included) that needs no tokenizer: its UTF-8 bytes. */
function tokenBound(message: Message): number {
  let bound = sizes.get(message);
  if (bound === undefined) {
    bound = Buffer.byteLength(message.content, 'utf8') + TOKENS_PER_MESSAGE;
    sizes.set(message, bound);
  }
  return bound;
}

/** Whether a message may be sent at all (replaced replies are left out by the window, which knows them). */
function isUsable(message: Message): boolean {
  return (
    (message.role === 'user' || message.role === 'assistant') &&
    message.metadata.error === undefined &&
    message.content !== ''
  );
}

/**
 * The newest run of messages that fits the budget, oldest first. The turn's own message is always sent
 * (max_message_length bounds it); older ones are added newest first until the next would not fit, so the
 * model sees a contiguous recent conversation. Replies that failed (metadata.error) are left out, so are
 * replies a regeneration replaced (replies.ts), and the history never starts with an assistant message (some providers require a user message first). A
 * conversation's window is kept from turn to turn (see Window): a turn looks at the messages added since
 * and the oldest it drops, so a long chat costs a turn no more than a short one.
 */
export function selectHistory(options: SelectHistoryOptions): SelectedHistory {
  const system = options.system === undefined ? 0 : systemTokens(options.countTokens, options.system);
  return select(options, system, messageCounter(options.countTokens), false)!;
}

/**
 * What `selectHistory` would choose when the whole conversation fits the budget even by its UTF-8 size (an
 * upper bound of its tokens), found without a tokenizer; `tokens` is then that bound. Undefined when the
 * bound does not fit: only real counting can tell which messages stay.
 */
export function selectWithoutCounting(
  options: Omit<SelectHistoryOptions, 'countTokens'>,
): SelectedHistory | undefined {
  const system =
    options.system === undefined ? 0 : Buffer.byteLength(options.system, 'utf8') + TOKENS_PER_MESSAGE;
  return select(options, system, tokenBound, true);
}

/**
 * The newest run of usable messages that fits `budget` (the newest always), as a conversation's previous
 * turn left it: a turn adds a message or two at the end and drops the oldest that no longer fit, so it
 * looks at what changed, not at the whole window (a long chat's window is hundreds of messages).
 */
interface Window {
  budget: number;
  systemCost: number;
  /** The sequence's newest message when the window was taken, and its index. */
  last: number;
  lastMessage: Message;
  /** Index in the sequence of the window's oldest message (`chosen[offset]`). */
  start: number;
  /** TOKENS_PER_REPLY + system + the costs of the window's messages. */
  tokens: number;
  /**
   * The window's messages, oldest first, and their prompt form: those from `offset` on. A window moves on
   * in place (new ones pushed, dropped ones left behind `offset`, the arrays compacted now and then), so a
   * turn does not copy the hundreds of messages of a long chat's window twice over.
   */
  chosen: Message[];
  prompts: PlainTextPromptMessage[];
  offset: number;
  /** No usable message older than the window was left out. */
  covered: boolean;
  /** The budget had room for older messages than the sequence held. */
  truncated: boolean;
}

// Per cost function, each conversation's last window, keyed by the sequence's identity, else by its first
// message object (the history cache keeps both the same from turn to turn; a log parsed anew starts afresh).
const windows = new WeakMap<MessageCost, WeakMap<object, Window>>();

function windowOf(
  count: number,
  first: number,
  at: (index: number) => Message,
  identity: object | undefined,
  systemCost: number,
  budget: number,
  cost: MessageCost,
  wholeOrNothing: boolean,
): Window | undefined {
  if (count === 0) return undefined;
  let byConversation = windows.get(cost);
  if (byConversation === undefined) {
    byConversation = new WeakMap();
    windows.set(cost, byConversation);
  }
  const key = identity ?? at(first);
  const previous = byConversation.get(key);
  const continues =
    previous !== undefined &&
    previous.budget === budget &&
    previous.systemCost === systemCost &&
    previous.last >= first &&
    previous.last < count &&
    at(previous.last) === previous.lastMessage &&
    (previous.chosen.length === previous.offset ||
      (previous.start >= first && at(previous.start) === previous.chosen[previous.offset]));
  // A conversation that outgrew the budget never fits whole again (it only grows): no need to slide on.
  if (continues && wholeOrNothing && !previous.covered) return previous;
  const window = continues
    ? slideWindow(previous, count, at, cost)
    : walkWindow(count, first, at, systemCost, budget, cost);
  byConversation.set(key, window);
  return window;
}

/** The window found from the newest message back (no earlier window to start from). */
function walkWindow(
  count: number,
  first: number,
  at: (index: number) => Message,
  systemCost: number,
  budget: number,
  cost: MessageCost,
): Window {
  let tokens = TOKENS_PER_REPLY + systemCost;
  let start = count;
  let covered = true;
  // Newest first while collecting.
  const chosen: Message[] = [];
  // Replies a later regeneration replaced (replies.ts): the replacement is met first, walking back.
  let replaced: Set<string> | undefined;
  let index = count - 1;
  for (; index >= first; index--) {
    const message = at(index);
    const replaces = replacedBy(message);
    if (replaces !== undefined) {
      replaced ??= new Set();
      replaced.add(replaces);
    }
    if (!isUsable(message) || replaced?.has(message.id)) continue;
    const messageTokens = cost(message);
    if (chosen.length > 0 && tokens + messageTokens > budget) {
      covered = false;
      break;
    }
    tokens += messageTokens;
    chosen.push(message);
    start = index;
  }
  // Room was left, but the older messages are not held.
  const truncated = index < first && first > 0;
  if (truncated) covered = false;
  chosen.reverse();
  const lastMessage = at(count - 1);
  return {
    budget,
    systemCost,
    last: count - 1,
    lastMessage,
    start,
    tokens,
    chosen,
    prompts: chosen.map(promptMessage),
    offset: 0,
    covered,
    truncated,
  };
}

/** Dropped messages are cut off the arrays once they are this many and more than the ones kept. */
const COMPACT_AFTER = 64;

/** `window` moved on, in place, to the sequence's end: the new messages added, the oldest dropped while over. */
function slideWindow(
  window: Window,
  count: number,
  at: (index: number) => Message,
  cost: MessageCost,
): Window {
  const { chosen, prompts } = window;
  const wasEmpty = chosen.length === window.offset;
  for (let index = window.last + 1; index < count; index++) {
    const message = at(index);
    // A regenerated reply takes the replaced one out of the window (replies.ts).
    const replaces = replacedBy(message);
    if (replaces !== undefined) {
      const position = chosen.findLastIndex((kept) => kept.id === replaces);
      if (position >= window.offset) {
        window.tokens -= cost(chosen[position]!);
        chosen.splice(position, 1);
        prompts.splice(position, 1);
      }
    }
    if (!isUsable(message)) continue;
    window.tokens += cost(message);
    chosen.push(message);
    prompts.push(promptMessage(message));
  }
  if (wasEmpty && chosen.length > window.offset) window.start = count; // found below
  const firstKept = window.offset;
  while (chosen.length - window.offset > 1 && window.tokens > window.budget) {
    window.tokens -= cost(chosen[window.offset++]!);
  }
  const dropped = window.offset - firstKept;
  if (window.offset >= COMPACT_AFTER && window.offset * 2 > chosen.length) {
    window.chosen = chosen.slice(window.offset);
    window.prompts = prompts.slice(window.offset);
    window.offset = 0;
  }
  // The index of the new oldest message: the first of the window at or after where the old one was.
  if (window.chosen.length > window.offset) {
    let start = window.start >= count ? window.last + 1 : window.start;
    const oldest = window.chosen[window.offset];
    while (start < count && at(start) !== oldest) start++;
    window.start = start;
  }
  window.last = count - 1;
  window.lastMessage = at(count - 1);
  window.covered &&= dropped === 0;
  window.truncated &&= dropped === 0;
  return window;
}

function select(
  options: Omit<SelectHistoryOptions, 'countTokens'>,
  systemCost: number,
  cost: MessageCost,
  allOrNothing: boolean,
): SelectedHistory | undefined {
  const { budget } = options;
  const source = options.messages;
  const sequence = 'count' in source ? source : undefined;
  const count = sequence?.count ?? (source as readonly Message[]).length;
  const first = sequence?.first ?? 0;
  const at =
    sequence !== undefined
      ? (index: number) => sequence.at(index)
      : (index: number) => (source as readonly Message[])[index]!;
  const window = windowOf(count, first, at, sequence?.identity, systemCost, budget, cost, allOrNothing);
  if (window === undefined) {
    const tokens = TOKENS_PER_REPLY + systemCost;
    return allOrNothing && tokens > budget
      ? undefined
      : { messages: [], prompt: [], tokens, omitted: 0, start: count, truncated: false };
  }
  // By the bound, the whole conversation must fit (the turn's own message too): only then is it known
  // to fit by real counting.
  if (allOrNothing && (!window.covered || window.tokens > budget)) return undefined;
  // The history never starts with an assistant message.
  let { tokens } = window;
  let oldest = window.offset;
  while (window.chosen.length - oldest > 1 && window.chosen[oldest]!.role === 'assistant') {
    tokens -= cost(window.chosen[oldest++]!);
  }
  const chosen = window.chosen.length - oldest;
  return new WindowSelection(
    window.prompts.slice(oldest),
    tokens,
    count - chosen,
    window.chosen.length === window.offset ? count : window.start,
    window.truncated,
  );
}

/**
 * A window's selection, whose AI SDK form (`messages`) is made only when asked for: a call with tools
 * takes it; the others send the prompt. A class, not an object literal with a getter
 * (lint/no-object-literal-accessor.grit).
 */
class WindowSelection implements SelectedHistory {
  readonly prompt: PlainTextPromptMessage[];
  readonly tokens: number;
  readonly omitted: number;
  readonly start: number;
  readonly truncated: boolean;
  #messages: ModelMessage[] | undefined;

  constructor(
    prompt: PlainTextPromptMessage[],
    tokens: number,
    omitted: number,
    start: number,
    truncated: boolean,
  ) {
    this.prompt = prompt;
    this.tokens = tokens;
    this.omitted = omitted;
    this.start = start;
    this.truncated = truncated;
  }

  get messages(): ModelMessage[] {
    this.#messages ??= this.prompt.map(modelMessageOf);
    return this.#messages;
  }
}

/** A chosen message's form for the AI SDK (role and text), from its prompt form. */
function modelMessageOf(message: PlainTextPromptMessage): ModelMessage {
  return { role: message.role, content: message.content[0].text };
}

/** The prompt's form of a stored message, made once, when it enters a window (where it is kept). */
function promptMessage(message: Message): PlainTextPromptMessage {
  return plainTextPromptMessage(message.role as 'user' | 'assistant', message.content);
}
