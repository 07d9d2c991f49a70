/**
 * One model call with the platform's rules: retries are the AI SDK's own (`maxRetries`, backoff that honours
 * Retry-After), an idle deadline aborts a provider that stops answering, and every failure comes out as a
 * PlatformError from toLlmError. Streaming is the one path: `generate` collects the same stream.
 *
 * A conversation of plain text messages (every chat turn) goes to the AI SDK model's `doStream` directly,
 * with the SDK's own settings check and retries (`ai/internal`); anything else goes through `streamText`.
 * Why: streamText's generality (prompt schema validation, tool steps, several stream transforms) cost
 * about 0.9 ms of CPU per call here, most of a chat turn with a fast model, where the direct call costs
 * 0.02 ms (bench/chat, bench/peers). Both paths give the same parts, errors and abort behaviour.
 */

import type {
  LanguageModelV3,
  LanguageModelV3Prompt,
  LanguageModelV3StreamPart,
  SharedV3ProviderOptions,
} from '@ai-sdk/provider';
import {
  type FinishReason,
  jsonSchema,
  type ModelMessage,
  stepCountIs,
  streamText,
  type ToolSet,
  tool,
} from 'ai';
import { prepareCallSettings, prepareRetries } from 'ai/internal';
import { createDeadlines, type Deadline } from '../core/deadlines.ts';
import type { LlmCallObserver, LlmCallOutcome } from '../core/observers.ts';
import { type LlmErrorContext, toLlmError } from './errors.ts';
import { plainTextPrompt, promptWithSystem } from './plain-text-prompt.ts';

/** What a caller asks of a model. */
export interface LlmRequest {
  /** "provider:model"; the default model when absent. */
  model?: string;
  /** The conversation, oldest first. */
  messages: ModelMessage[];
  /**
   * Optional: the same conversation already in the model's prompt form (plain text from the user and the
   * assistant, no system message), made for this call and handed to the provider as it is — by a caller
   * that keeps it from call to call (text_chat's history window), so the call does not convert `messages`
   * again. Used when the call has no tools; the caller vouches that it says what `messages` says. With
   * it, `messages` may be a getter: a call without tools never reads it.
   */
  prompt?: LanguageModelV3Prompt;
  /** A system prompt put before the messages. */
  system?: string;
  maxOutputTokens?: number;
  temperature?: number;
  topP?: number;
  stopSequences?: string[];
  seed?: number;
  /** Per-provider options; `offline.retrieved` (string[]) is what the offline model lists. */
  providerOptions?: SharedV3ProviderOptions;
  /** Cancels the call (the client went away). */
  signal?: AbortSignal;
  /** Tools the model may call, by name: the call runs them and gives the model their results. */
  tools?: Record<string, LlmTool>;
  /** With tools: model calls at most (each tool round is one more). Default 5. */
  maxSteps?: number;
  /** Whether and which tool the model must call; the model decides when absent. */
  toolChoice?: 'auto' | 'none' | 'required' | { type: 'tool'; toolName: string };
}

/** A tool the model may call. */
export interface LlmTool {
  description: string;
  /** JSON Schema of the tool's input (an object). */
  inputSchema: Record<string, unknown>;
  /**
   * Runs the tool; what it resolves with (JSON) is the model's tool result. A throw is reported to the
   * model. Absent: the caller runs it (the OpenAI-compatible endpoint's client) — the call ends with the
   * tool call, finish reason `tool-calls`.
   */
  execute?(
    input: unknown,
    context: { toolCallId: string; signal: AbortSignal | undefined },
  ): Promise<unknown>;
}

/** Token counts of a finished call, when the provider reports them. */
export interface LlmUsage {
  inputTokens: number | undefined;
  outputTokens: number | undefined;
  totalTokens: number | undefined;
}

/** A finished call. */
export interface LlmResult {
  /** The "provider:model" that answered. */
  model: string;
  text: string;
  finishReason: FinishReason;
  usage: LlmUsage;
  /** The tools the model called, when it called any (in order). */
  toolCalls?: { toolCallId: string; toolName: string; input: unknown }[];
}

/** One piece of a streamed reply: text as it arrives, the tools it calls and their results, then the finish. */
export type LlmStreamPart =
  | { type: 'text-delta'; text: string }
  | { type: 'tool-call'; toolCallId: string; toolName: string; input: unknown }
  | { type: 'tool-result'; toolCallId: string; toolName: string; output?: unknown; error?: string }
  | ({ type: 'finish' } & LlmResult);

/** Takes one part of a reply; a promise it returns holds the next part back until it settles. */
export type LlmPartHandler = (part: LlmStreamPart) => PromiseLike<void> | void;

/** What a failed tool's error says, for the model and the client (never a stack). */
function toPlatformErrorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** Model calls of a request with tools, when it names none. */
const DEFAULT_MAX_STEPS = 5;

/** The AI SDK form of the request's tools. */
function sdkTools(tools: Record<string, LlmTool>): ToolSet {
  return Object.fromEntries(
    Object.entries(tools).map(([name, definition]) => {
      const description = definition.description;
      const inputSchema = jsonSchema(definition.inputSchema as Parameters<typeof jsonSchema>[0]);
      const execute = definition.execute;
      return [
        name,
        execute === undefined
          ? tool({ description, inputSchema })
          : tool({
              description,
              inputSchema,
              execute: (input, options) =>
                execute(input, { toolCallId: options.toolCallId, signal: options.abortSignal }),
            }),
      ];
    }),
  );
}

/** How a call is made: bounded retries and the idle timeout, from config. */
export interface CallSettings {
  maxRetries: number;
  requestTimeoutMs: number;
}

/**
 * The reason a finished call's signal is aborted with: one instance, since building a DOMException (it
 * captures a stack) on every call is a measurable share of a fast call.
 */
const CALL_FINISHED = new DOMException('call finished', 'AbortError');
/** The reason a streamed call is aborted with when its consumer stopped reading. */
const CONSUMER_LEFT = new DOMException('the consumer stopped reading', 'AbortError');

// Every call's idle deadline on one timer (core/deadlines.ts): a timer of its own was a measurable share
// of a fast call.
const idleTimers = createDeadlines();

/**
 * An abort signal that fires when nothing arrives for `timeoutMs` (before the first chunk or between two),
 * or when the caller's own signal fires. A total deadline would cut off long, healthy replies. One timer
 * serves the whole call: each chunk only notes the time, and the timer, when it fires early, waits out the
 * rest (a clearTimeout and setTimeout per chunk cost more than the rest of a fast model's stream).
 * A class, not an object literal with getters (lint/no-object-literal-accessor.grit).
 */
class IdleDeadline {
  readonly #controller = new AbortController();
  readonly signal = this.#controller.signal;
  readonly #timeoutMs: number;
  readonly #callerSignal: AbortSignal | undefined;
  #timer: Deadline | undefined;
  /** The clock runs (armed and not paused) since `#waitStarted`. */
  #running = false;
  #waitStarted = 0;
  #timedOut = false;
  #cancelled = false;

  constructor(timeoutMs: number, callerSignal: AbortSignal | undefined) {
    this.#timeoutMs = timeoutMs;
    this.#callerSignal = callerSignal;
    if (callerSignal?.aborted) this.#onCallerAbort();
    else callerSignal?.addEventListener('abort', this.#onCallerAbort, { once: true });
  }

  readonly #onCallerAbort = () => {
    this.#cancelled = !this.#timedOut;
    this.#controller.abort(this.#callerSignal?.reason);
  };

  readonly #expire = () => {
    this.#timer = undefined;
    if (!this.#running || this.signal.aborted) return;
    const waited = performance.now() - this.#waitStarted;
    if (waited < this.#timeoutMs) {
      this.#timer = idleTimers.add(Math.max(1, this.#timeoutMs - waited), this.#expire);
      return;
    }
    this.#timedOut = !this.#cancelled;
    this.#controller.abort(new DOMException(`no answer within ${this.#timeoutMs} ms`, 'TimeoutError'));
  };

  get timedOut(): boolean {
    return this.#timedOut;
  }

  get cancelled(): boolean {
    return this.#cancelled;
  }

  /** (Re)starts the wait for the next chunk. */
  arm(): void {
    this.#running = true;
    this.#waitStarted = performance.now();
    this.#timer ??= idleTimers.add(this.#timeoutMs, this.#expire);
  }

  /** Stops the clock while the consumer handles a chunk. */
  pause(): void {
    this.#running = false;
  }

  /**
   * Stops the clock for good; a call that did not read its reply to the end also aborts whatever is
   * still running. One that did has nothing left to stop, and aborting would only dispatch the abort
   * event to every listener the call set up (a measurable share of a fast call).
   */
  finish(readToEnd: boolean): void {
    this.#running = false;
    if (this.#timer !== undefined) idleTimers.cancel(this.#timer);
    this.#timer = undefined;
    this.#callerSignal?.removeEventListener('abort', this.#onCallerAbort);
    if (!readToEnd && !this.signal.aborted) this.#controller.abort(CALL_FINISHED);
  }
}

function usageOf(usage: LlmUsage): LlmUsage {
  return { inputTokens: usage.inputTokens, outputTokens: usage.outputTokens, totalTokens: usage.totalTokens };
}

/** The settings of a request that sets none (most chat turns): nothing to check, nothing to copy. */
const NO_CALL_SETTINGS = Object.freeze({});

/** The request's sampling settings, checked as streamText checks them (InvalidArgumentError). */
function callSettingsOf(request: LlmRequest) {
  if (
    request.maxOutputTokens === undefined &&
    request.temperature === undefined &&
    request.topP === undefined &&
    request.stopSequences === undefined &&
    request.seed === undefined
  ) {
    return NO_CALL_SETTINGS;
  }
  const settings = prepareCallSettings({
    ...(request.maxOutputTokens === undefined ? {} : { maxOutputTokens: request.maxOutputTokens }),
    ...(request.temperature === undefined ? {} : { temperature: request.temperature }),
    ...(request.topP === undefined ? {} : { topP: request.topP }),
    ...(request.stopSequences === undefined ? {} : { stopSequences: request.stopSequences }),
    ...(request.seed === undefined ? {} : { seed: request.seed }),
  });
  return Object.fromEntries(Object.entries(settings).filter(([, value]) => value !== undefined));
}

/** Counts as the AI SDK adds them: undefined only when both are. */
function addCounts(first: number | undefined, second: number | undefined): number | undefined {
  return first === undefined && second === undefined ? undefined : (first ?? 0) + (second ?? 0);
}

/**
 * The model's stream, straight from `doStream` (retried as streamText retries it). Read in `streamModel`
 * itself, not through a generator of its own: a generator layer costs each of a reply's parts a round of
 * promises (about 1.4 µs of a chat turn's CPU).
 */
async function openDirectStream(
  model: LanguageModelV3,
  prompt: LanguageModelV3Prompt,
  request: LlmRequest,
  settings: CallSettings,
  signal: AbortSignal,
): Promise<ReadableStreamDefaultReader<LanguageModelV3StreamPart>> {
  const callSettings = callSettingsOf(request);
  const { retry } = prepareRetries({ maxRetries: settings.maxRetries, abortSignal: signal });
  const { stream } = await retry(() =>
    model.doStream({
      ...callSettings,
      prompt,
      abortSignal: signal,
      ...(request.providerOptions === undefined ? {} : { providerOptions: request.providerOptions }),
    }),
  );
  return stream.getReader();
}

/**
 * Calls `model` and hands each part of its reply to `onPart` as it arrives; resolves once the reply is
 * whole, and rejects with a PlatformError (from toLlmError) when the call fails. A handler that returns a
 * promise holds the next part back until it settles (the idle deadline paused meanwhile); one that returns
 * nothing costs the call no promise at all — so a chat turn hands a reply's parts over without a round of
 * promises each, as a generator would take (bench/peers). `observer` is told when the first text came and
 * how the call ended (aborted through `signal`, by default `request.signal`: cancelled).
 */
export async function callModel(
  model: LanguageModelV3,
  request: LlmRequest,
  settings: CallSettings,
  errorContext: Omit<LlmErrorContext, 'timedOut' | 'cancelled' | 'timeoutMs'>,
  observer: LlmCallObserver | undefined,
  onPart: LlmPartHandler,
  signal: AbortSignal | undefined = request.signal,
): Promise<void> {
  const deadline = new IdleDeadline(settings.requestTimeoutMs, signal);
  // A failure of the handler is the caller's own, not the model's: it leaves the call as it was thrown.
  let handlerFailure: { error: unknown } | undefined;
  const deliver = (part: LlmStreamPart): PromiseLike<void> | undefined => {
    try {
      return onPart(part) as PromiseLike<void> | undefined;
    } catch (error) {
      handlerFailure = { error };
      throw error;
    }
  };
  /** Waits for a handler's promise with the idle clock stopped: the handler's time is not the model's. */
  const handled = async (pending: PromiseLike<void>, restartClock = true) => {
    deadline.pause();
    try {
      await pending;
    } catch (error) {
      handlerFailure = { error };
      throw error;
    }
    if (restartClock) deadline.arm();
  };
  const startedAt = observer === undefined ? 0 : performance.now();
  let text = '';
  let outcome: LlmCallOutcome = { error: 'CHAT_ERR_LLM_CANCELLED' };
  let readToEnd = false;
  let firstTextSeconds: number | undefined;
  const observeText = () => {
    if (text !== '' || observer === undefined) return;
    firstTextSeconds = (performance.now() - startedAt) / 1000;
    observer.firstText(errorContext.model, firstTextSeconds);
  };
  try {
    deadline.arm();
    const hasTools = request.tools !== undefined && Object.keys(request.tools).length > 0;
    // With tools the AI SDK runs the loop of model calls and tool calls: its general path.
    const prompt = hasTools
      ? undefined
      : request.prompt !== undefined
        ? promptWithSystem(request.system, request.prompt)
        : plainTextPrompt(request.system, request.messages);
    if (prompt !== undefined) {
      const { signal } = deadline;
      const reader = await openDirectStream(model, prompt, request, settings, signal);
      // An abort (deadline, cancel, or the consumer gone) ends the read at once, as streamText's abort does.
      const stop = () => void reader.cancel(signal.reason).catch(() => {});
      signal.addEventListener('abort', stop, { once: true });
      let finished = false;
      let done = false;
      try {
        while (!signal.aborted) {
          const next = await reader.read();
          if (next.done) break;
          const part = next.value;
          deadline.arm();
          if (part.type === 'text-delta') {
            if (part.delta === '') continue;
            observeText();
            text += part.delta;
            const pending = deliver({ type: 'text-delta', text: part.delta });
            if (pending !== undefined) await handled(pending);
          } else if (part.type === 'error') {
            throw part.error;
          } else if (part.type === 'finish' && !finished) {
            finished = true;
            deadline.pause();
            const inputTokens = part.usage.inputTokens.total;
            const outputTokens = part.usage.outputTokens.total;
            outcome = { inputTokens, outputTokens };
            const pending = deliver({
              type: 'finish',
              model: errorContext.model,
              text,
              finishReason: part.finishReason.unified,
              usage: { inputTokens, outputTokens, totalTokens: addCounts(inputTokens, outputTokens) },
            });
            // The clock stays stopped: after the finish, nothing more is waited for.
            if (pending !== undefined) await handled(pending, false);
          }
        }
        if (signal.aborted) throw signal.reason ?? new DOMException('aborted', 'AbortError');
        done = true;
      } finally {
        signal.removeEventListener('abort', stop);
        // Stopped early (the consumer left, or a failure): the model's stream is cancelled.
        if (!done) stop();
      }
      // A stream that ends without saying how ends as streamText reports it: reason "other".
      if (!finished) {
        outcome = {};
        const pending = deliver({
          type: 'finish',
          model: errorContext.model,
          text,
          finishReason: 'other',
          usage: { inputTokens: undefined, outputTokens: undefined, totalTokens: undefined },
        });
        if (pending !== undefined) await handled(pending);
      }
      readToEnd = true;
      return;
    }
    const result = streamText({
      model,
      messages: request.messages,
      maxRetries: settings.maxRetries,
      abortSignal: deadline.signal,
      // Errors arrive as stream parts and are thrown below; the default handler would only log them.
      onError: () => {},
      ...(request.system === undefined ? {} : { system: request.system }),
      ...(request.maxOutputTokens === undefined ? {} : { maxOutputTokens: request.maxOutputTokens }),
      ...(request.temperature === undefined ? {} : { temperature: request.temperature }),
      ...(request.topP === undefined ? {} : { topP: request.topP }),
      ...(request.stopSequences === undefined ? {} : { stopSequences: request.stopSequences }),
      ...(request.seed === undefined ? {} : { seed: request.seed }),
      ...(request.providerOptions === undefined ? {} : { providerOptions: request.providerOptions }),
      ...(hasTools
        ? {
            tools: sdkTools(request.tools as Record<string, LlmTool>),
            stopWhen: stepCountIs(request.maxSteps ?? DEFAULT_MAX_STEPS),
            ...(request.toolChoice === undefined ? {} : { toolChoice: request.toolChoice }),
          }
        : {}),
    });
    for await (const part of result.fullStream) {
      deadline.arm();
      let pending: PromiseLike<void> | undefined;
      if (part.type === 'text-delta') {
        if (part.text === '') continue;
        observeText();
        text += part.text;
        pending = deliver({ type: 'text-delta', text: part.text });
      } else if (part.type === 'tool-call') {
        const { toolCallId, toolName, input } = part;
        pending = deliver({ type: 'tool-call', toolCallId, toolName, input });
      } else if (part.type === 'tool-result' || part.type === 'tool-error') {
        const { toolCallId, toolName } = part;
        pending = deliver(
          part.type === 'tool-result'
            ? { type: 'tool-result', toolCallId, toolName, output: part.output }
            : { type: 'tool-result', toolCallId, toolName, error: toPlatformErrorMessage(part.error) },
        );
      } else if (part.type === 'error') {
        throw part.error;
      } else if (part.type === 'abort') {
        throw deadline.signal.reason ?? new DOMException('aborted', 'AbortError');
      } else if (part.type === 'finish') {
        deadline.pause();
        outcome = { inputTokens: part.totalUsage.inputTokens, outputTokens: part.totalUsage.outputTokens };
        pending = deliver({
          type: 'finish',
          model: errorContext.model,
          text,
          finishReason: part.finishReason,
          usage: usageOf(part.totalUsage),
        });
      }
      if (pending !== undefined) await handled(pending, part.type !== 'finish');
    }
    readToEnd = true;
  } catch (error) {
    if (handlerFailure !== undefined && error === handlerFailure.error) throw error;
    const failure = toLlmError(error, {
      ...errorContext,
      timeoutMs: settings.requestTimeoutMs,
      timedOut: deadline.timedOut,
      cancelled: deadline.cancelled,
    });
    outcome = { error: failure.code };
    throw failure;
  } finally {
    deadline.finish(readToEnd);
    observer?.callEnded(
      errorContext.model,
      (performance.now() - startedAt) / 1000,
      firstTextSeconds === undefined ? outcome : { ...outcome, firstTextSeconds },
    );
  }
}

/**
 * Streams a reply from `model` as an async generator over `callModel`; throws a PlatformError when the call
 * fails. The model is read as fast as it writes (its parts wait here for the consumer), so a slow consumer
 * never looks like a model that stopped answering; a consumer that stops reading early cancels the call.
 */
export async function* streamModel(
  model: LanguageModelV3,
  request: LlmRequest,
  settings: CallSettings,
  errorContext: Omit<LlmErrorContext, 'timedOut' | 'cancelled' | 'timeoutMs'>,
  observer?: LlmCallObserver,
): AsyncGenerator<LlmStreamPart, void, undefined> {
  const left = new AbortController();
  const signal = request.signal === undefined ? left.signal : AbortSignal.any([request.signal, left.signal]);
  const parts: LlmStreamPart[] = [];
  let wake: (() => void) | undefined;
  let settled = false;
  let failure: { error: unknown } | undefined;
  // The request as it is, not a copy: a copy would lose what its class defines on its prototype (a
  // text_chat turn's `messages`).
  const call = callModel(
    model,
    request,
    settings,
    errorContext,
    observer,
    (part) => {
      parts.push(part);
      wake?.();
    },
    signal,
  ).then(
    () => {
      settled = true;
      wake?.();
    },
    (error: unknown) => {
      settled = true;
      failure = { error };
      wake?.();
    },
  );
  try {
    for (;;) {
      while (parts.length > 0) yield parts.shift() as LlmStreamPart;
      if (failure !== undefined) throw failure.error;
      if (settled) return;
      await new Promise<void>((resolve) => {
        wake = resolve;
      });
      wake = undefined;
    }
  } finally {
    // The consumer stopped early: the call is cancelled, and ended (its outcome observed) before this returns.
    if (!settled) {
      left.abort(CONSUMER_LEFT);
      await call;
    }
  }
}

/** Calls `model` and returns the whole reply; throws a PlatformError when the call fails. */
export async function generateWithModel(
  model: LanguageModelV3,
  request: LlmRequest,
  settings: CallSettings,
  errorContext: Omit<LlmErrorContext, 'timedOut' | 'cancelled' | 'timeoutMs'>,
  observer?: LlmCallObserver,
): Promise<LlmResult> {
  const toolCalls: NonNullable<LlmResult['toolCalls']> = [];
  let result: LlmResult | undefined;
  await callModel(model, request, settings, errorContext, observer, (part) => {
    if (part.type === 'tool-call') {
      toolCalls.push({ toolCallId: part.toolCallId, toolName: part.toolName, input: part.input });
    } else if (part.type === 'finish' && result === undefined) {
      const { type: _type, ...finished } = part;
      result = toolCalls.length === 0 ? finished : { ...finished, toolCalls };
    }
  });
  if (result === undefined) throw toLlmError(new Error('the stream ended without a finish'), errorContext);
  return result;
}
