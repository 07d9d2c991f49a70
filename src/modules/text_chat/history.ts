import type { ModelMessage } from 'ai';
import type { Message } from '../../core/types.ts';

/**
 * Which history goes to the model: the newest messages whose tokens, with the system prompt's, fit the
 * budget. Tokens are counted with gpt-tokenizer (o200k_base, the GPT-4o/GPT-5 BPE). Other models tokenize
 * differently, but a real BPE count is within a few per cent for them, where characters/4 can be off by 2x
 * (code, non-Latin scripts).
 */

/** Counts the tokens of a text. */
export type TokenCounter = (text: string) => number;

/** The chat format wraps each message in role markers (`<|im_start|>role … <|im_end|>`): about 4 tokens. */
export const TOKENS_PER_MESSAGE = 4;
/** The reply is primed with `<|im_start|>assistant`: about 3 tokens. */
export const TOKENS_PER_REPLY = 3;

let counter: Promise<TokenCounter> | undefined;

/**
 * gpt-tokenizer's counter, loaded on first use: its BPE ranks take about a second to load, which the
 * platform's startup should not wait for (setup starts the load in the background).
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

export interface SelectHistoryOptions {
  /** The session's messages, oldest first; the last one is the user message of this turn. */
  messages: readonly Message[];
  system: string | undefined;
  budget: number;
  countTokens: TokenCounter;
}

/**
 * The newest run of messages that fits the budget, oldest first. The turn's own message is always sent
 * (max_message_length bounds it); older ones are added newest first until the next would not fit, so the
 * model sees a contiguous recent conversation. Replies that failed (metadata.error) are left out, and the
 * history never starts with an assistant message (some providers require a user message first).
 */
export function selectHistory(options: SelectHistoryOptions): SelectedHistory {
  const { countTokens, budget } = options;
  const usable = options.messages.filter(
    (message) =>
      (message.role === 'user' || message.role === 'assistant') &&
      message.metadata.error === undefined &&
      message.content !== '',
  );
  let tokens = TOKENS_PER_REPLY;
  if (options.system !== undefined) tokens += countTokens(options.system) + TOKENS_PER_MESSAGE;
  let start = usable.length;
  for (let index = usable.length - 1; index >= 0; index--) {
    const cost = countTokens(usable[index]!.content) + TOKENS_PER_MESSAGE;
    if (index < usable.length - 1 && tokens + cost > budget) break;
    tokens += cost;
    start = index;
  }
  while (start < usable.length - 1 && usable[start]!.role === 'assistant') {
    tokens -= countTokens(usable[start]!.content) + TOKENS_PER_MESSAGE;
    start++;
  }
  const chosen = usable.slice(start);
  return {
    messages: chosen.map((message) => ({
      role: message.role as 'user' | 'assistant',
      content: message.content,
    })),
    tokens,
    omitted: options.messages.length - chosen.length,
  };
}
