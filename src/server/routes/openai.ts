/**
 * The OpenAI-compatible API, so any OpenAI client (the `openai` npm package, LangChain, curl scripts)
 * can use parley: `POST /v1/chat/completions` (whole or streamed, with `usage`) and `GET /v1/models`.
 *
 * OpenAI's chat completions are stateless — the client sends the whole conversation each time — so a
 * request is one generation over the given messages through the model registry, with no session, no
 * persona and nothing stored. `model` is a "provider:model" name from /v1/models; `parley` or none means
 * the default model. Sessions, memory and personas are what the /v1/sessions API is for.
 */

import { randomUUID } from 'node:crypto';
import type { FinishReason, ModelMessage } from 'ai';
import type { FastifyInstance } from 'fastify';
import { PlatformError, ValidationError } from '../../core/errors.ts';
import { newId } from '../../core/ids.ts';
import type { LlmRequest, LlmTool, LlmUsage } from '../../llm/call.ts';
import { principalOf } from '../auth-hook.ts';
import { abortOnDisconnect } from '../client-disconnect.ts';
import { toHttpError } from '../http-errors.ts';
import { createRateLimiter } from '../rate-limiter.ts';
import { errorResponses } from '../schemas.ts';
import type { ServerContext } from '../server-context.ts';
import { createSseStream } from '../sse.ts';

/** `completions.rate_limit.used`: a node let a user's completion through `server.completions_per_minute`. */
export interface CompletionsRateLimitUsed {
  userId: string;
  /** The sending server, which ignores its own. */
  node: string;
}

declare module '../../core/events.ts' {
  interface EventMap {
    'completions.rate_limit.used': CompletionsRateLimitUsed;
  }
}

/** The model name that means "parley's default model". */
export const DEFAULT_MODEL_ALIAS = 'parley';

type ContentPart = { type: string; text?: string };

/** A function call as OpenAI writes it (in an assistant message, and in the answer). */
interface OpenAIToolCall {
  id: string;
  type: 'function';
  function: { name: string; arguments: string };
}

interface ChatCompletionMessage {
  role: 'system' | 'developer' | 'user' | 'assistant' | 'tool';
  content?: string | ContentPart[] | null;
  /** An assistant message's function calls. */
  tool_calls?: OpenAIToolCall[];
  /** A `tool` message: the call it answers. */
  tool_call_id?: string;
}

/** A function the client offers the model (and runs itself). */
interface OpenAIFunctionTool {
  type: 'function';
  function: { name: string; description?: string; parameters?: Record<string, unknown> };
}

type OpenAIToolChoice = 'auto' | 'none' | 'required' | { type: 'function'; function: { name: string } };

interface ChatCompletionRequest {
  model?: string;
  messages: ChatCompletionMessage[];
  stream?: boolean;
  stream_options?: { include_usage?: boolean } | null;
  temperature?: number | null;
  top_p?: number | null;
  max_tokens?: number | null;
  max_completion_tokens?: number | null;
  stop?: string | string[] | null;
  seed?: number | null;
  n?: number | null;
  /** Function calling: the model may call these; the client runs them and sends the results back. */
  tools?: OpenAIFunctionTool[] | null;
  tool_choice?: OpenAIToolChoice | null;
}

const contentSchema = {
  anyOf: [
    { type: 'string' },
    { type: 'null' },
    {
      type: 'array',
      items: {
        type: 'object',
        required: ['type'],
        properties: { type: { type: 'string' }, text: { type: 'string' } },
      },
    },
  ],
};

// Unknown fields are accepted and ignored, as OpenAI clients send fields parley has no use for.
const requestSchema = {
  type: 'object',
  required: ['messages'],
  properties: {
    model: { type: 'string', minLength: 1, maxLength: 200 },
    messages: {
      type: 'array',
      minItems: 1,
      items: {
        type: 'object',
        required: ['role'],
        properties: {
          role: { type: 'string', enum: ['system', 'developer', 'user', 'assistant', 'tool'] },
          content: contentSchema,
          name: { type: 'string' },
          tool_calls: {
            type: 'array',
            items: {
              type: 'object',
              required: ['id', 'function'],
              properties: {
                id: { type: 'string', minLength: 1 },
                type: { type: 'string', enum: ['function'] },
                function: {
                  type: 'object',
                  required: ['name', 'arguments'],
                  properties: { name: { type: 'string', minLength: 1 }, arguments: { type: 'string' } },
                },
              },
            },
          },
          tool_call_id: { type: 'string', minLength: 1 },
        },
      },
    },
    stream: { type: 'boolean' },
    tools: {
      type: ['array', 'null'],
      maxItems: 128,
      items: {
        type: 'object',
        required: ['type', 'function'],
        properties: {
          type: { type: 'string', enum: ['function'] },
          function: {
            type: 'object',
            required: ['name'],
            properties: {
              name: { type: 'string', pattern: '^[A-Za-z0-9_-]{1,64}$' },
              description: { type: 'string' },
              parameters: { type: 'object' },
            },
          },
        },
      },
    },
    tool_choice: {
      anyOf: [
        { type: 'string', enum: ['auto', 'none', 'required'] },
        {
          type: 'object',
          required: ['type', 'function'],
          properties: {
            type: { type: 'string', enum: ['function'] },
            function: { type: 'object', required: ['name'], properties: { name: { type: 'string' } } },
          },
        },
        { type: 'null' },
      ],
    },
    stream_options: {
      type: ['object', 'null'],
      properties: { include_usage: { type: 'boolean' } },
    },
    temperature: { type: ['number', 'null'], minimum: 0, maximum: 2 },
    top_p: { type: ['number', 'null'], minimum: 0, maximum: 1 },
    max_tokens: { type: ['integer', 'null'], minimum: 1 },
    max_completion_tokens: { type: ['integer', 'null'], minimum: 1 },
    stop: {
      anyOf: [
        { type: 'string' },
        { type: 'array', items: { type: 'string' }, maxItems: 4 },
        { type: 'null' },
      ],
    },
    seed: { type: ['integer', 'null'] },
    n: { type: ['integer', 'null'], minimum: 1, maximum: 1, description: 'Only 1 is supported.' },
  },
} as const;

const usageSchema = {
  type: 'object',
  required: ['prompt_tokens', 'completion_tokens', 'total_tokens'],
  properties: {
    prompt_tokens: { type: 'integer' },
    completion_tokens: { type: 'integer' },
    total_tokens: { type: 'integer' },
  },
} as const;

const completionSchema = {
  type: 'object',
  required: ['id', 'object', 'created', 'model', 'choices', 'usage'],
  properties: {
    id: { type: 'string' },
    object: { type: 'string', const: 'chat.completion' },
    created: { type: 'integer' },
    model: { type: 'string' },
    choices: {
      type: 'array',
      items: {
        type: 'object',
        required: ['index', 'message', 'finish_reason'],
        properties: {
          index: { type: 'integer' },
          message: {
            type: 'object',
            required: ['role', 'content'],
            properties: {
              role: { type: 'string' },
              content: { type: ['string', 'null'] },
              tool_calls: {
                type: 'array',
                items: {
                  type: 'object',
                  properties: {
                    id: { type: 'string' },
                    type: { type: 'string' },
                    function: {
                      type: 'object',
                      properties: { name: { type: 'string' }, arguments: { type: 'string' } },
                    },
                  },
                },
              },
            },
          },
          finish_reason: { type: 'string' },
        },
      },
    },
    usage: usageSchema,
  },
} as const;

function textOf(content: ChatCompletionMessage['content'], index: number): string {
  if (content === null || content === undefined) return '';
  if (typeof content === 'string') return content;
  return content
    .map((part) => {
      if (part.type !== 'text' || typeof part.text !== 'string') {
        throw new ValidationError(
          `messages[${index}] has a "${part.type}" content part; only text parts are supported`,
        );
      }
      return part.text;
    })
    .join('');
}

/** A function call's arguments: JSON, as OpenAI sends them; a ValidationError naming the message if not. */
function argumentsOf(call: OpenAIToolCall, index: number): unknown {
  try {
    return JSON.parse(call.function.arguments === '' ? '{}' : call.function.arguments);
  } catch {
    throw new ValidationError(
      `messages[${index}].tool_calls: the arguments of "${call.function.name}" are not JSON`,
    );
  }
}

/**
 * Leading system (and developer) messages become the system prompt; the rest stay in order. An assistant
 * message's `tool_calls` and the `tool` messages answering them become the AI SDK's tool-call and
 * tool-result parts.
 */
function toModelMessages(messages: ChatCompletionMessage[]): { system?: string; messages: ModelMessage[] } {
  const system: string[] = [];
  const result: ModelMessage[] = [];
  // Call id → function name: a tool message names only the call it answers.
  const calledNames = new Map<string, string>();
  messages.forEach((message, index) => {
    const text = textOf(message.content, index);
    if (message.role === 'assistant' && message.tool_calls !== undefined && message.tool_calls.length > 0) {
      const calls = message.tool_calls.map((call) => {
        calledNames.set(call.id, call.function.name);
        return {
          type: 'tool-call' as const,
          toolCallId: call.id,
          toolName: call.function.name,
          input: argumentsOf(call, index),
        };
      });
      result.push({
        role: 'assistant',
        content: [...(text === '' ? [] : [{ type: 'text' as const, text }]), ...calls],
      });
      return;
    }
    if (message.role === 'tool') {
      const toolName = message.tool_call_id === undefined ? undefined : calledNames.get(message.tool_call_id);
      if (toolName === undefined) {
        throw new ValidationError(
          `messages[${index}] is a tool result whose tool_call_id names no earlier assistant tool call`,
        );
      }
      result.push({
        role: 'tool',
        content: [
          {
            type: 'tool-result',
            toolCallId: message.tool_call_id as string,
            toolName,
            output: { type: 'text', value: text },
          },
        ],
      });
      return;
    }
    switch (message.role) {
      case 'system':
      case 'developer':
        if (result.length === 0) system.push(text);
        else result.push({ role: 'system', content: text });
        return;
      case 'user':
        result.push({ role: 'user', content: text });
        return;
      case 'assistant':
        result.push({ role: 'assistant', content: text });
        return;
      default:
        throw new ValidationError(`messages[${index}] has role "${message.role}"`);
    }
  });
  if (result.length === 0) {
    throw new ValidationError('messages must hold at least one user or assistant message');
  }
  return { ...(system.length === 0 ? {} : { system: system.join('\n\n') }), messages: result };
}

/** The client's functions as the model layer's tools (without `execute`: the client runs them). */
function clientTools(tools: OpenAIFunctionTool[] | null | undefined): Record<string, LlmTool> | undefined {
  if (tools === undefined || tools === null || tools.length === 0) return undefined;
  return Object.fromEntries(
    tools.map((offered): [string, LlmTool] => [
      offered.function.name,
      {
        description: offered.function.description ?? '',
        inputSchema: offered.function.parameters ?? { type: 'object', properties: {} },
      },
    ]),
  );
}

function toolChoiceOf(choice: OpenAIToolChoice | null | undefined): LlmRequest['toolChoice'] {
  if (choice === undefined || choice === null) return undefined;
  return typeof choice === 'string' ? choice : { type: 'tool', toolName: choice.function.name };
}

/** A tool call as OpenAI writes it. */
function openAIToolCall(call: { toolCallId: string; toolName: string; input: unknown }): OpenAIToolCall {
  return {
    id: call.toolCallId,
    type: 'function',
    function: { name: call.toolName, arguments: JSON.stringify(call.input ?? {}) },
  };
}

function finishReasonOf(reason: FinishReason): string {
  switch (reason) {
    case 'length':
      return 'length';
    case 'content-filter':
      return 'content_filter';
    case 'tool-calls':
      return 'tool_calls';
    default:
      return 'stop';
  }
}

function usageOf(usage: LlmUsage) {
  const prompt = usage.inputTokens ?? 0;
  const completion = usage.outputTokens ?? 0;
  return {
    prompt_tokens: prompt,
    completion_tokens: completion,
    total_tokens: usage.totalTokens ?? prompt + completion,
  };
}

/** Registers /v1/chat/completions and /v1/models. */
export function registerOpenAIRoutes(app: FastifyInstance, context: ServerContext): void {
  const { llm } = context.platform;
  const tags = ['openai'];
  const limiter = createRateLimiter({ perMinute: context.platform.config.server.completions_per_minute });
  // The limit holds across nodes: each node tells the others of every call it lets through and counts
  // theirs (its own, coming back through the bus, it knows by `node`).
  const node = randomUUID();
  const { bus } = context.platform;
  const unsubscribe = bus.on(
    'completions.rate_limit.used',
    (event) => {
      const { userId, node: sender } = (event.data ?? {}) as Partial<CompletionsRateLimitUsed>;
      if (typeof userId === 'string' && sender !== node) limiter.note(userId);
    },
    { mode: 'local' },
  );
  app.addHook('onClose', async () => unsubscribe());

  function resolveModelName(model: string | undefined): string {
    if (model === undefined || model === DEFAULT_MODEL_ALIAS) return llm.defaultModelName();
    llm.resolve(model); // throws CHAT_ERR_LLM_UNKNOWN_MODEL (400) for a name no provider knows
    return model;
  }

  app.get(
    '/v1/models',
    {
      schema: {
        tags,
        summary: 'The configured models (OpenAI list format); "parley" names the default one',
        response: {
          200: {
            type: 'object',
            required: ['object', 'data'],
            properties: {
              object: { type: 'string', const: 'list' },
              data: {
                type: 'array',
                items: {
                  type: 'object',
                  required: ['id', 'object', 'created', 'owned_by'],
                  properties: {
                    id: { type: 'string' },
                    object: { type: 'string', const: 'model' },
                    created: { type: 'integer' },
                    owned_by: { type: 'string' },
                    default: { type: 'boolean' },
                  },
                },
              },
            },
          },
          ...errorResponses,
        },
      },
    },
    async () => ({
      object: 'list',
      data: llm.list().map((model) => ({
        id: model.id,
        object: 'model',
        created: 0,
        owned_by: model.provider,
        default: model.isDefault,
      })),
    }),
  );

  app.post<{ Body: ChatCompletionRequest }>(
    '/v1/chat/completions',
    {
      schema: {
        tags,
        summary: 'OpenAI-compatible chat completion (stateless; stream: true gives OpenAI SSE chunks)',
        body: requestSchema,
        response: { 200: completionSchema, ...errorResponses },
      },
    },
    async (request, reply) => {
      const principal = principalOf(request);
      const body = request.body;
      const verdict = limiter.take(principal.userId);
      if (!verdict.allowed) {
        throw new PlatformError(
          'CHAT_ERR_RATE_LIMITED',
          `more than ${context.platform.config.server.completions_per_minute} completions in a minute ` +
            `(server.completions_per_minute); retry in ${verdict.retryAfterSeconds} s`,
          { details: { retryAfterSeconds: verdict.retryAfterSeconds } },
        );
      }
      const used: CompletionsRateLimitUsed = { userId: principal.userId, node };
      bus.emit('completions.rate_limit.used', used, { userId: principal.userId }).catch((error: unknown) => {
        request.log.debug({ err: error }, 'could not tell the other nodes of a counted completion');
      });
      const model = resolveModelName(body.model);
      const { system, messages } = toModelMessages(body.messages);
      const tools = clientTools(body.tools);
      const toolChoice = toolChoiceOf(body.tool_choice);
      const signal = abortOnDisconnect(reply);
      const maxOutputTokens = body.max_completion_tokens ?? body.max_tokens ?? undefined;
      const stop = body.stop ?? undefined;
      const llmRequest: LlmRequest = {
        model,
        messages,
        signal,
        ...(system === undefined ? {} : { system }),
        ...(body.temperature == null ? {} : { temperature: body.temperature }),
        ...(body.top_p == null ? {} : { topP: body.top_p }),
        ...(maxOutputTokens === undefined ? {} : { maxOutputTokens }),
        ...(stop === undefined ? {} : { stopSequences: typeof stop === 'string' ? [stop] : stop }),
        ...(body.seed == null ? {} : { seed: body.seed }),
        // The client runs its functions: one model call, which ends at the calls it asks for.
        ...(tools === undefined ? {} : { tools, maxSteps: 1 }),
        ...(toolChoice === undefined ? {} : { toolChoice }),
      };
      const id = `chatcmpl-${newId()}`;
      const created = Math.floor(Date.now() / 1000);

      if (body.stream !== true) {
        const result = await llm.generate(llmRequest);
        const toolCalls = result.toolCalls?.map(openAIToolCall);
        return {
          id,
          object: 'chat.completion',
          created,
          model,
          choices: [
            {
              index: 0,
              message:
                toolCalls === undefined
                  ? { role: 'assistant', content: result.text }
                  : {
                      role: 'assistant',
                      content: result.text === '' ? null : result.text,
                      tool_calls: toolCalls,
                    },
              finish_reason: finishReasonOf(result.finishReason),
            },
          ],
          usage: usageOf(result.usage),
        };
      }

      const includeUsage = body.stream_options?.include_usage === true;
      const stream = createSseStream(reply, { heartbeatMs: context.sseHeartbeatMs });
      const chunk = (delta: Record<string, unknown>, finishReason: string | null, extra = {}) => ({
        id,
        object: 'chat.completion.chunk',
        created,
        model,
        choices: [{ index: 0, delta, finish_reason: finishReason }],
        ...extra,
      });
      const begin = () => {
        if (!stream.started) stream.send(undefined, chunk({ role: 'assistant', content: '' }, null));
      };
      let callIndex = 0;
      try {
        for await (const part of llm.stream(llmRequest)) {
          if (stream.closed) break;
          if (part.type === 'text-delta') {
            begin();
            stream.send(undefined, chunk({ content: part.text }, null));
          } else if (part.type === 'tool-call') {
            begin();
            const call = { index: callIndex++, ...openAIToolCall(part) };
            stream.send(undefined, chunk({ tool_calls: [call] }, null));
          } else if (part.type === 'finish') {
            begin();
            stream.send(undefined, chunk({}, finishReasonOf(part.finishReason)));
            if (includeUsage) {
              stream.send(undefined, { ...chunk({}, null), choices: [], usage: usageOf(part.usage) });
            }
          }
        }
      } catch (error) {
        // Before the first chunk, the client gets the real status and the JSON error.
        if (!stream.started) throw error;
        const failure = toHttpError(error, context);
        if (failure.status >= 500 && !signal.aborted) request.log.error({ err: error }, 'completion failed');
        stream.send(undefined, failure.body);
      }
      stream.send(undefined, '[DONE]');
      stream.end();
      return reply;
    },
  );
}
