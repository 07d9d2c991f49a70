import type { ModelMessage } from 'ai';
import type { Message } from '../../core/types.ts';

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

/**
 * gpt-tokenizer's counter, loaded on first use (about a second and 60 MB): only conversations too long for
 * `selectWithoutCounting` and turns with knowledge passages need it.
 */
export function loadTokenCounter(): Promise<TokenCounter> {
  counter ??= import('gpt-tokenizer').then((tokenizer) => (text: string) => tokenizer.countTokens(text));
  return counter;
}

/** What `selectHistory` chose. */
export interface SelectedHistory {
  messages: ModelMessage[];
  /** Tokens of the system prompt and the chosen messages, framing included. */
  tokens: number;
  /** Messages of the log left out (too old for the budget, or failed replies). */
  omitted: number;
}

/** Messages by position, oldest first: an array, or a session log as the history cache loaded it. */
export interface MessageSequence {
  readonly count: number;
  at(index: number): Message;
}

export interface SelectHistoryOptions {
  /** The session's messages, oldest first; the last one is the user message of this turn. */
  messages: readonly Message[] | MessageSequence;
  system: string | undefined;
  budget: number;
  countTokens: TokenCounter;
}

// A message's text never changes, so its count is kept for the message object's life: the history cache
// hands the same objects to every turn of a session, and each message is tokenized once per node.
const counted = new WeakMap<TokenCounter, WeakMap<Message, number>>();

function messageCounter(countTokens: TokenCounter): (message: Message) => number {
  let known = counted.get(countTokens);
  if (known === undefined) {
    known = new WeakMap();
    counted.set(countTokens, known);
  }
  const cache = known;
  return (message) => {
    let tokens = cache.get(message);
    if (tokens === undefined) {
      tokens = countTokens(message.content) + TOKENS_PER_MESSAGE;
      cache.set(message, tokens);
    }
    return tokens;
  };
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
 * model sees a contiguous recent conversation. Replies that failed (metadata.error) are left out, and the
 * history never starts with an assistant message (some providers require a user message first). Only the
 * messages that fit are visited (newest first), so a long log costs no more than a short one.
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

function select(
  options: Omit<SelectHistoryOptions, 'countTokens'>,
  systemCost: number,
  cost: (message: Message) => number,
  allOrNothing: boolean,
): SelectedHistory | undefined {
  const { budget } = options;
  const source = options.messages;
  const count = 'count' in source ? source.count : source.length;
  const at = 'count' in source ? (index: number) => source.at(index) : (index: number) => source[index]!;
  let tokens = TOKENS_PER_REPLY + systemCost;
  // Newest first while collecting.
  const chosen: Message[] = [];
  for (let index = count - 1; index >= 0; index--) {
    const message = at(index);
    if (!isUsable(message)) continue;
    const messageTokens = cost(message);
    if (chosen.length > 0 && tokens + messageTokens > budget) {
      if (allOrNothing) return undefined;
      break;
    }
    tokens += messageTokens;
    chosen.push(message);
  }
  // The turn's own message goes whatever its size; by the bound, that is only known to fit when it does.
  if (allOrNothing && tokens > budget) return undefined;
  while (chosen.length > 1 && chosen.at(-1)!.role === 'assistant') tokens -= cost(chosen.pop()!);
  chosen.reverse();
  return { messages: chosen.map(modelMessage), tokens, omitted: count - chosen.length };
}

// The model's form of a stored message, made once: a session's turns send mostly the same messages again,
// and the objects are never changed after this.
const modelMessages = new WeakMap<Message, ModelMessage>();

function modelMessage(message: Message): ModelMessage {
  const known = modelMessages.get(message);
  if (known !== undefined) return known;
  const converted: ModelMessage = { role: message.role as 'user' | 'assistant', content: message.content };
  modelMessages.set(message, converted);
  return converted;
}
