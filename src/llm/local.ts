/**
 * The `local` provider: a GGUF file run in-process by node-llama-cpp, behind the AI SDK's LanguageModelV3
 * interface, streaming tokens as llama.cpp produces them.
 *
 * node-llama-cpp is an opt-in (its npm install brings prebuilt CPU, CUDA and Vulkan binaries, about 700 MB
 * on Linux x64), so it is imported dynamically: without it everything else works, and using a local model
 * raises a clear error with the install command. It is loaded with `build: 'never'` and `skipDownload`, so
 * it only ever uses the prebuilt binary from its npm package and never builds or downloads at run time.
 */

import { access } from 'node:fs/promises';
import type {
  LanguageModelV3,
  LanguageModelV3CallOptions,
  LanguageModelV3StreamPart,
  SharedV3Warning,
} from '@ai-sdk/provider';
import type {
  ChatHistoryItem,
  ChatWrapper,
  LlamaChatResponseChunk,
  LlamaContext,
  LlamaContextSequence,
  LlamaModel,
} from 'node-llama-cpp';
import type { LocalModelSettings } from './config.ts';
import { createLlamaLoader, localUnavailable, type NodeLlamaCpp } from './llama-loader.ts';

export { LOCAL_RUNTIME_INSTALL, LOCAL_RUNTIME_PACKAGE } from './llama-loader.ts';

/** Options of the local runtime. */
export interface LocalRuntimeOptions {
  /** Loads node-llama-cpp; replaceable so the "not installed" path can be tested. */
  importRuntime?: () => Promise<NodeLlamaCpp>;
  /** Receives llama.cpp's warnings and errors (dropped when absent). */
  log?: (level: 'warn' | 'error', message: string) => void;
}

/** Loads GGUF models on first use and serves them as AI SDK models; one per process is enough. */
export interface LocalRuntime {
  /** The AI SDK model for one configured GGUF model (loaded on its first call, then kept). */
  languageModel(provider: string, modelName: string, settings: LocalModelSettings): LanguageModelV3;
  /** Unloads every model and frees the native memory. */
  dispose(): Promise<void>;
}

interface LoadedModel {
  model: LlamaModel;
  context: LlamaContext;
  runtime: NodeLlamaCpp;
  /** The chat template, resolved by the first call and reused: resolving it takes most of a second. */
  chatWrapper: ChatWrapper | undefined;
  /** Callers waiting for a free sequence (the context has `parallel` of them). */
  waiting: Array<() => void>;
}

/** The AI SDK prompt as node-llama-cpp chat history, plus what had to be dropped. */
function toChatHistory(options: LanguageModelV3CallOptions, warnings: SharedV3Warning[]): ChatHistoryItem[] {
  const history: ChatHistoryItem[] = [];
  let dropped = false;
  for (const message of options.prompt) {
    if (message.role === 'system') {
      history.push({ type: 'system', text: message.content });
    } else if (message.role === 'user' || message.role === 'assistant') {
      let text = '';
      for (const part of message.content) {
        if (part.type === 'text') text += part.text;
        else if (part.type !== 'reasoning') dropped = true;
      }
      history.push(message.role === 'user' ? { type: 'user', text } : { type: 'model', response: [text] });
    } else {
      dropped = true;
    }
  }
  if (dropped) {
    warnings.push({
      type: 'other',
      message: 'the local provider ignores files, tool calls and tool results',
    });
  }
  // The model writes the last history item; an assistant message at the end is continued as a prefill.
  if (history.at(-1)?.type !== 'model') history.push({ type: 'model', response: [] });
  return history;
}

function unsupportedWarnings(options: LanguageModelV3CallOptions): SharedV3Warning[] {
  const warnings: SharedV3Warning[] = [];
  if (options.tools !== undefined && options.tools.length > 0) {
    warnings.push({ type: 'unsupported', feature: 'tools' });
  }
  if (options.responseFormat?.type === 'json')
    warnings.push({ type: 'unsupported', feature: 'responseFormat' });
  return warnings;
}

const FINISH_REASONS = {
  eogToken: 'stop',
  stopGenerationTrigger: 'stop',
  customStopTrigger: 'stop',
  maxTokens: 'length',
  functionCalls: 'tool-calls',
  abort: 'other',
} as const;

/** Creates the runtime that owns node-llama-cpp, the loaded models and their contexts. */
export function createLocalRuntime(options: LocalRuntimeOptions = {}): LocalRuntime {
  const loader = createLlamaLoader({
    importRuntime: options.importRuntime,
    log: options.log,
    needs: 'the local provider',
  });
  const { loadRuntime, loadLlama } = loader;
  const models = new Map<string, Promise<LoadedModel>>();

  async function loadModel(
    provider: string,
    modelName: string,
    settings: LocalModelSettings,
  ): Promise<LoadedModel> {
    const where = `llm.providers.${provider}.models.${modelName}.path`;
    const runtime = await loadRuntime();
    try {
      await access(settings.path);
    } catch (error) {
      throw localUnavailable(
        `local model "${provider}:${modelName}": no file at ${settings.path}; check ${where}`,
        error,
        {
          path: settings.path,
        },
      );
    }
    const llama = await loadLlama(runtime, settings);
    let model: LlamaModel;
    try {
      model = await llama.loadModel({ modelPath: settings.path });
    } catch (error) {
      throw localUnavailable(
        `local model "${provider}:${modelName}" failed to load from ${settings.path}: ${(error as Error).message}`,
        error,
      );
    }
    const context = await model.createContext({
      contextSize: Math.min(settings.contextSize, model.trainContextSize),
      sequences: settings.parallel,
      threads: settings.maxThreads,
    });
    return { model, context, runtime, chatWrapper: undefined, waiting: [] };
  }

  function loaded(provider: string, modelName: string, settings: LocalModelSettings): Promise<LoadedModel> {
    const key = `${settings.path}|${settings.contextSize}|${settings.parallel}|${settings.gpu}|${settings.maxThreads}`;
    let entry = models.get(key);
    if (entry === undefined) {
      entry = loadModel(provider, modelName, settings);
      // A failed load is not cached: fixing the file or installing the runtime must not need a restart of
      // every other model.
      entry.catch(() => models.delete(key));
      models.set(key, entry);
    }
    return entry;
  }

  /** Waits for one of the context's sequences (one generation each) to be free. */
  async function acquireSequence(
    target: LoadedModel,
    signal: AbortSignal | undefined,
  ): Promise<LlamaContextSequence> {
    while (target.context.sequencesLeft === 0) {
      signal?.throwIfAborted();
      await new Promise<void>((resolve, reject) => {
        const wake = () => {
          signal?.removeEventListener('abort', onAbort);
          resolve();
        };
        const onAbort = () => {
          target.waiting.splice(target.waiting.indexOf(wake), 1);
          reject(signal?.reason);
        };
        target.waiting.push(wake);
        signal?.addEventListener('abort', onAbort, { once: true });
      });
    }
    return target.context.getSequence();
  }

  function releaseSequence(target: LoadedModel, sequence: LlamaContextSequence): void {
    if (!sequence.disposed) sequence.dispose();
    target.waiting.shift()?.();
  }

  function languageModel(provider: string, modelName: string, settings: LocalModelSettings): LanguageModelV3 {
    const model: LanguageModelV3 = {
      specificationVersion: 'v3',
      provider: `local.${provider}`,
      modelId: modelName,
      supportedUrls: {},

      async doStream(callOptions) {
        const warnings = unsupportedWarnings(callOptions);
        const history = toChatHistory(callOptions, warnings);
        const target = await loaded(provider, modelName, settings);
        const sequence = await acquireSequence(target, callOptions.abortSignal);
        let chat: InstanceType<NodeLlamaCpp['LlamaChat']>;
        try {
          chat = new target.runtime.LlamaChat({
            contextSequence: sequence,
            autoDisposeSequence: false,
            ...(target.chatWrapper === undefined ? {} : { chatWrapper: target.chatWrapper }),
          });
        } catch (error) {
          releaseSequence(target, sequence);
          throw error;
        }
        target.chatWrapper ??= chat.chatWrapper;
        const stop = new AbortController();
        const forwardAbort = () => stop.abort(callOptions.abortSignal?.reason);
        callOptions.abortSignal?.addEventListener('abort', forwardAbort, { once: true });
        let open = true;
        let textStarted = false;
        let reasoningStarted = false;

        const stream = new ReadableStream<LanguageModelV3StreamPart>({
          start(controller) {
            const push = (part: LanguageModelV3StreamPart) => {
              if (open) controller.enqueue(part);
            };
            const endReasoning = () => {
              if (reasoningStarted) push({ type: 'reasoning-end', id: 'reasoning' });
              reasoningStarted = false;
            };
            push({ type: 'stream-start', warnings });
            push({ type: 'response-metadata', modelId: modelName, timestamp: new Date() });

            const onResponseChunk = (chunk: LlamaChatResponseChunk) => {
              if (chunk.text === '') return;
              if (chunk.type === 'segment') {
                if (chunk.segmentType !== 'thought') return;
                if (!reasoningStarted) push({ type: 'reasoning-start', id: 'reasoning' });
                reasoningStarted = true;
                push({ type: 'reasoning-delta', id: 'reasoning', delta: chunk.text });
                return;
              }
              endReasoning();
              if (!textStarted) push({ type: 'text-start', id: 'text' });
              textStarted = true;
              push({ type: 'text-delta', id: 'text', delta: chunk.text });
            };

            chat
              .generateResponse(history, {
                onResponseChunk,
                signal: stop.signal,
                stopOnAbortSignal: false,
                ...(callOptions.maxOutputTokens === undefined
                  ? {}
                  : { maxTokens: callOptions.maxOutputTokens }),
                ...(callOptions.temperature === undefined ? {} : { temperature: callOptions.temperature }),
                ...(callOptions.topP === undefined ? {} : { topP: callOptions.topP }),
                ...(callOptions.topK === undefined ? {} : { topK: callOptions.topK }),
                ...(callOptions.seed === undefined ? {} : { seed: callOptions.seed }),
                ...(callOptions.stopSequences === undefined
                  ? {}
                  : { customStopTriggers: callOptions.stopSequences }),
                ...(callOptions.presencePenalty === undefined && callOptions.frequencyPenalty === undefined
                  ? {}
                  : {
                      repeatPenalty: {
                        ...(callOptions.presencePenalty === undefined
                          ? {}
                          : { presencePenalty: callOptions.presencePenalty }),
                        ...(callOptions.frequencyPenalty === undefined
                          ? {}
                          : { frequencyPenalty: callOptions.frequencyPenalty }),
                      },
                    }),
              })
              .then(
                (response) => {
                  endReasoning();
                  if (textStarted) push({ type: 'text-end', id: 'text' });
                  const meter = sequence.tokenMeter.getState();
                  push({
                    type: 'finish',
                    finishReason: {
                      unified: FINISH_REASONS[response.metadata.stopReason],
                      raw: response.metadata.stopReason,
                    },
                    usage: {
                      inputTokens: {
                        total: meter.usedInputTokens,
                        noCache: meter.usedInputTokens,
                        cacheRead: 0,
                        cacheWrite: undefined,
                      },
                      outputTokens: { total: meter.usedOutputTokens, text: undefined, reasoning: undefined },
                    },
                  });
                },
                (error: unknown) => push({ type: 'error', error }),
              )
              .finally(() => {
                callOptions.abortSignal?.removeEventListener('abort', forwardAbort);
                chat.dispose();
                releaseSequence(target, sequence);
                if (open) controller.close();
                open = false;
              });
          },
          cancel(reason) {
            // The reader went away: stop generating so the sequence is freed for the next caller.
            open = false;
            stop.abort(reason);
          },
        });
        return { stream, request: { body: { messages: history } } };
      },

      async doGenerate(callOptions) {
        const { stream } = await model.doStream(callOptions);
        let text = '';
        let reasoning = '';
        let finish: Extract<LanguageModelV3StreamPart, { type: 'finish' }> | undefined;
        let warnings: SharedV3Warning[] = [];
        for await (const part of stream) {
          if (part.type === 'text-delta') text += part.delta;
          else if (part.type === 'reasoning-delta') reasoning += part.delta;
          else if (part.type === 'stream-start') warnings = part.warnings;
          else if (part.type === 'finish') finish = part;
          else if (part.type === 'error') throw part.error;
        }
        return {
          content: [
            ...(reasoning === '' ? [] : [{ type: 'reasoning' as const, text: reasoning }]),
            { type: 'text' as const, text },
          ],
          finishReason: finish?.finishReason ?? { unified: 'other', raw: undefined },
          usage: finish?.usage ?? {
            inputTokens: {
              total: undefined,
              noCache: undefined,
              cacheRead: undefined,
              cacheWrite: undefined,
            },
            outputTokens: { total: undefined, text: undefined, reasoning: undefined },
          },
          warnings,
        };
      },
    };
    return model;
  }

  return { languageModel, dispose: () => loader.dispose(models) };
}
