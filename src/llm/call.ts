/**
 * One model call with the platform's rules: retries are the AI SDK's own (`maxRetries`, backoff that honours
 * Retry-After), an idle deadline aborts a provider that stops answering, and every failure comes out as a
 * PlatformError from toLlmError. Streaming is the one path: `generate` collects the same stream.
 */

import type { LanguageModelV3, SharedV3ProviderOptions } from '@ai-sdk/provider';
import { type FinishReason, type ModelMessage, streamText } from 'ai';
import { type LlmErrorContext, toLlmError } from './errors.ts';

/** What a caller asks of a model. */
export interface LlmRequest {
  /** "provider:model"; the default model when absent. */
  model?: string;
  /** The conversation, oldest first. */
  messages: ModelMessage[];
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
}

/** One piece of a streamed reply: text as it arrives, then the finish. */
export type LlmStreamPart = { type: 'text-delta'; text: string } | ({ type: 'finish' } & LlmResult);

/** How a call is made: bounded retries and the idle timeout, from config. */
export interface CallSettings {
  maxRetries: number;
  requestTimeoutMs: number;
}

/**
 * An abort signal that fires when nothing arrives for `timeoutMs` (before the first chunk or between two),
 * or when the caller's own signal fires. A total deadline would cut off long, healthy replies.
 */
function idleDeadline(timeoutMs: number, callerSignal: AbortSignal | undefined) {
  const controller = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  let timedOut = false;
  let cancelled = false;
  const onCallerAbort = () => {
    cancelled = !timedOut;
    controller.abort(callerSignal?.reason);
  };
  if (callerSignal?.aborted) onCallerAbort();
  else callerSignal?.addEventListener('abort', onCallerAbort, { once: true });
  const pause = () => clearTimeout(timer);
  return {
    signal: controller.signal,
    get timedOut() {
      return timedOut;
    },
    get cancelled() {
      return cancelled;
    },
    /** (Re)starts the wait for the next chunk. */
    arm() {
      pause();
      timer = setTimeout(() => {
        timedOut = !cancelled;
        controller.abort(new DOMException(`no answer within ${timeoutMs} ms`, 'TimeoutError'));
      }, timeoutMs);
    },
    /** Stops the clock while the consumer handles a chunk. */
    pause,
    /** Stops the clock for good and aborts whatever is still running. */
    finish() {
      pause();
      callerSignal?.removeEventListener('abort', onCallerAbort);
      if (!controller.signal.aborted) controller.abort(new DOMException('call finished', 'AbortError'));
    },
  };
}

function usageOf(usage: LlmUsage): LlmUsage {
  return { inputTokens: usage.inputTokens, outputTokens: usage.outputTokens, totalTokens: usage.totalTokens };
}

/** Streams a reply from `model`; throws a PlatformError (from toLlmError) when the call fails. */
export async function* streamModel(
  model: LanguageModelV3,
  request: LlmRequest,
  settings: CallSettings,
  errorContext: Omit<LlmErrorContext, 'timedOut' | 'cancelled' | 'timeoutMs'>,
): AsyncGenerator<LlmStreamPart, void, undefined> {
  const deadline = idleDeadline(settings.requestTimeoutMs, request.signal);
  let text = '';
  try {
    deadline.arm();
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
    });
    for await (const part of result.fullStream) {
      deadline.arm();
      if (part.type === 'text-delta') {
        if (part.text === '') continue;
        text += part.text;
        deadline.pause();
        yield { type: 'text-delta', text: part.text };
        deadline.arm();
      } else if (part.type === 'error') {
        throw part.error;
      } else if (part.type === 'abort') {
        throw deadline.signal.reason ?? new DOMException('aborted', 'AbortError');
      } else if (part.type === 'finish') {
        deadline.pause();
        yield {
          type: 'finish',
          model: errorContext.model,
          text,
          finishReason: part.finishReason,
          usage: usageOf(part.totalUsage),
        };
      }
    }
  } catch (error) {
    throw toLlmError(error, {
      ...errorContext,
      timeoutMs: settings.requestTimeoutMs,
      timedOut: deadline.timedOut,
      cancelled: deadline.cancelled,
    });
  } finally {
    deadline.finish();
  }
}

/** Calls `model` and returns the whole reply; throws a PlatformError when the call fails. */
export async function generateWithModel(
  model: LanguageModelV3,
  request: LlmRequest,
  settings: CallSettings,
  errorContext: Omit<LlmErrorContext, 'timedOut' | 'cancelled' | 'timeoutMs'>,
): Promise<LlmResult> {
  for await (const part of streamModel(model, request, settings, errorContext)) {
    if (part.type === 'finish') {
      const { type: _type, ...result } = part;
      return result;
    }
  }
  throw toLlmError(new Error('the stream ended without a finish'), errorContext);
}
