/**
 * Loading node-llama-cpp and its llama.cpp binaries, shared by the local chat provider (local.ts) and local
 * embedding models (embeddings.ts): one set of rules for the opt-in package and the prebuilt binary.
 */
import type { Llama } from 'node-llama-cpp';
import { PlatformError } from '../core/errors.ts';
import type { LocalModelSettings } from './config.ts';

/** The npm package the local provider runs on. */
export const LOCAL_RUNTIME_PACKAGE = 'node-llama-cpp';
/** The command that installs the tested version of it. */
export const LOCAL_RUNTIME_INSTALL = 'npm install -E node-llama-cpp@3.21.1';

export type NodeLlamaCpp = typeof import('node-llama-cpp');

export interface LlamaLoaderOptions {
  /** Loads node-llama-cpp; replaceable so the "not installed" path can be tested. */
  importRuntime?: (() => Promise<NodeLlamaCpp>) | undefined;
  /** Receives llama.cpp's warnings and errors (dropped when absent). */
  log?: ((level: 'warn' | 'error', message: string) => void) | undefined;
  /** Who needs the package, for the "not installed" message (e.g. "the local provider"). */
  needs: string;
}

/** Loads node-llama-cpp once, and one Llama per (gpu, threads) setting. */
export interface LlamaLoader {
  loadRuntime(): Promise<NodeLlamaCpp>;
  loadLlama(runtime: NodeLlamaCpp, settings: LocalModelSettings): Promise<Llama>;
  /**
   * Frees the `loaded` models of the caller (each context before its model), then every Llama; a later
   * load starts afresh.
   */
  dispose(loaded?: Map<string, Promise<LoadedLlamaModel>>): Promise<void>;
}

/** What a caller keeps of a loaded GGUF model: the model and the context it opened on it. */
export interface LoadedLlamaModel {
  model: { dispose(): Promise<void> };
  context: { dispose(): Promise<void> };
}

/** A CHAT_ERR_LLM_UNAVAILABLE error for the local runtime. */
export function localUnavailable(
  message: string,
  cause?: unknown,
  details: Record<string, unknown> = {},
): PlatformError {
  return new PlatformError('CHAT_ERR_LLM_UNAVAILABLE', message, { cause, details });
}

function isModuleNotFound(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND';
}

/** Creates a loader; a failed load is forgotten, so a later call may try again. */
export function createLlamaLoader(options: LlamaLoaderOptions): LlamaLoader {
  const importRuntime = options.importRuntime ?? (() => import('node-llama-cpp'));
  const llamas = new Map<string, Promise<Llama>>();
  let runtimePromise: Promise<NodeLlamaCpp> | undefined;

  return {
    loadRuntime() {
      runtimePromise ??= importRuntime().catch((error: unknown) => {
        runtimePromise = undefined;
        if (isModuleNotFound(error)) {
          throw localUnavailable(
            `${options.needs} needs ${LOCAL_RUNTIME_PACKAGE}, which is not installed; run \`${LOCAL_RUNTIME_INSTALL}\` ` +
              'in the parley folder (see src/llm/README.md), or use another provider',
            error,
            { install: LOCAL_RUNTIME_INSTALL },
          );
        }
        throw localUnavailable(`${LOCAL_RUNTIME_PACKAGE} failed to load: ${(error as Error).message}`, error);
      });
      return runtimePromise;
    },

    loadLlama(runtime, settings) {
      const key = `${settings.gpu}/${settings.maxThreads}`;
      let llama = llamas.get(key);
      if (llama === undefined) {
        llama = runtime
          .getLlama({
            gpu: settings.gpu,
            // Only the prebuilt binary shipped in the npm package: never compile, never download.
            build: 'never',
            skipDownload: true,
            usePrebuiltBinaries: true,
            progressLogs: false,
            maxThreads: settings.maxThreads,
            logLevel: runtime.LlamaLogLevel.warn,
            logger: (level, message) => {
              if (level === 'error' || level === 'fatal') options.log?.('error', message);
              else if (level === 'warn') options.log?.('warn', message);
            },
          })
          .catch((error: unknown) => {
            llamas.delete(key);
            throw localUnavailable(
              `llama.cpp has no usable prebuilt binary here (gpu: ${String(settings.gpu)}): ${(error as Error).message}; ` +
                'set gpu to false for the CPU build',
              error,
            );
          });
        llamas.set(key, llama);
      }
      return llama;
    },

    async dispose(loaded) {
      if (loaded !== undefined) {
        const models = await Promise.allSettled(loaded.values());
        loaded.clear();
        for (const result of models) {
          if (result.status !== 'fulfilled') continue;
          await result.value.context.dispose();
          await result.value.model.dispose();
        }
      }
      const runtimes = await Promise.allSettled(llamas.values());
      llamas.clear();
      for (const result of runtimes) if (result.status === 'fulfilled') await result.value.dispose();
      runtimePromise = undefined;
    },
  };
}
