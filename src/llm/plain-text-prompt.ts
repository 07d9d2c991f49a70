/**
 * A request's conversation in the model's own prompt format (LanguageModelV3Prompt), as the AI SDK
 * converts it, when every message is plain text from the user or the assistant.
 *
 * A chat sends its history again on every turn: the same message objects, one or two added at the end and
 * a few dropped at the start. Converting — or merely looking up — each of the hundreds of messages of a
 * window on every call touched every message object, scattered through the heap: about 50 µs a turn under
 * load, a tenth of a whole turn's CPU (bench/chat). So each call's converted run is remembered under its
 * last message object, and a later call that holds that object near its end reuses the run the two share
 * — checked by identity, message by message, without touching the objects — and converts only the
 * messages after it.
 *
 * Only frozen message objects are remembered: freezing is the caller's promise that they never change,
 * and it keeps one-off conversations (the OpenAI-compatible endpoint makes new objects per request, some
 * of them large) out of the memory this holds. text_chat's history freezes its messages.
 */

import type { LanguageModelV3Prompt, LanguageModelV3TextPart } from '@ai-sdk/provider';
import type { ModelMessage } from 'ai';

/** One message of a model's prompt. */
export type PromptMessage = LanguageModelV3Prompt[number];

/**
 * A converted run: the messages of one call and their prompt form, both from `offset` on, index for index.
 * A call that continues a run takes it over and moves it on in place (the messages its window dropped left
 * behind `offset`, the new ones pushed, the arrays compacted now and then) rather than copying it.
 */
interface ConvertedRun {
  messages: ModelMessage[];
  converted: PromptMessage[];
  offset: number;
}

/** Left-behind prompt messages are cut off once they are this many and more than the ones kept. */
const COMPACT_AFTER = 64;

/** How many of a call's newest messages may be new since the run it continues (a turn adds 1–2). */
const LOOKBACK = 8;
/** Runs kept: one per conversation in use (each holds two arrays of its window's pointers). */
const MAX_RUNS = 1024;

// Last message object of a run → the run, least recently used first (a Map iterates in insertion order).
// A run is taken out when a call continues it, so there is about one per active conversation.
const runs = new Map<ModelMessage, ConvertedRun>();

/** A plain text message from the user or the assistant in the prompt's form. */
export interface PlainTextPromptMessage {
  role: 'user' | 'assistant';
  content: [LanguageModelV3TextPart];
}

/** A plain text message from the user or the assistant in the prompt's form, as the AI SDK converts it. */
export function plainTextPromptMessage(role: 'user' | 'assistant', text: string): PlainTextPromptMessage {
  return { role, content: [{ type: 'text', text }] };
}

function convert(message: ModelMessage): PromptMessage | undefined {
  if (message.providerOptions !== undefined || typeof message.content !== 'string') return undefined;
  if (message.role !== 'user' && message.role !== 'assistant') return undefined;
  return plainTextPromptMessage(message.role, message.content);
}

/**
 * `conversation` — already in the prompt's form, made for this call (`LlmRequest.prompt`) — after an
 * optional system prompt; undefined when there is no message.
 */
export function promptWithSystem(
  system: string | undefined,
  conversation: LanguageModelV3Prompt,
): LanguageModelV3Prompt | undefined {
  if (conversation.length === 0) return undefined;
  if (system === undefined) return conversation;
  const prompt: LanguageModelV3Prompt = new Array(conversation.length + 1);
  prompt[0] = { role: 'system', content: system };
  for (let index = 0; index < conversation.length; index++) prompt[index + 1] = conversation[index]!;
  return prompt;
}

/**
 * The earlier run `messages` continues, moved on past the messages the new window dropped, and how many of
 * its messages the two share; none: undefined.
 */
function sharedRun(messages: readonly ModelMessage[]): { run: ConvertedRun; shared: number } | undefined {
  for (let end = messages.length - 1; end >= Math.max(0, messages.length - LOOKBACK); end--) {
    const run = runs.get(messages[end]!);
    if (run === undefined) continue;
    runs.delete(messages[end]!);
    // The run's last message is messages[end]: the window dropped `dropped` messages from its start.
    const dropped = run.messages.length - run.offset - 1 - end;
    if (dropped < 0) return undefined;
    const from = run.offset + dropped;
    // Identity of every shared message (frozen, so unchanged); the objects themselves are not touched.
    for (let index = 0; index < end; index++) {
      if (messages[index] !== run.messages[from + index]) return undefined;
    }
    run.offset = from;
    return { run, shared: end + 1 };
  }
  return undefined;
}

/**
 * The prompt for `messages` after an optional system prompt; undefined when a message is not plain
 * user/assistant text (the caller then takes streamText's general path), or there are none.
 */
export function plainTextPrompt(
  system: string | undefined,
  messages: readonly ModelMessage[],
): LanguageModelV3Prompt | undefined {
  if (messages.length === 0) return undefined;
  const found = sharedRun(messages);
  const shared = found?.shared ?? 0;
  const run: ConvertedRun = found?.run ?? { messages: [], converted: [], offset: 0 };
  for (let index = shared; index < messages.length; index++) {
    const message = messages[index]!;
    const converted = convert(message);
    if (converted === undefined) return undefined;
    run.messages.push(message);
    run.converted.push(converted);
  }
  if (run.offset >= COMPACT_AFTER && run.offset * 2 > run.converted.length) {
    run.messages = run.messages.slice(run.offset);
    run.converted = run.converted.slice(run.offset);
    run.offset = 0;
  }
  const last = messages[messages.length - 1]!;
  if (Object.isFrozen(last)) {
    runs.set(last, run);
    if (runs.size > MAX_RUNS) runs.delete(runs.keys().next().value as ModelMessage);
  }
  // A new array either way (one whole-array copy): the remembered one must not be handed to a provider
  // that might change it.
  if (system === undefined) return run.converted.slice(run.offset);
  const systemMessage: PromptMessage = { role: 'system', content: system };
  if (run.offset === 0) {
    const prompt = run.converted.slice();
    prompt.unshift(systemMessage);
    return prompt;
  }
  const prompt = run.converted.slice(run.offset - 1);
  prompt[0] = systemMessage;
  return prompt;
}
