/**
 * Tools for a chat turn: the seed's aggregation again. Modules that offer tools answer `tools.describe`
 * with their names, descriptions and JSON Schema inputs (the tool_use module's built-ins; any module's
 * own); a turn gives them to the model, and a call the model makes goes to `tools.call.<name>` — a bus
 * request the offering module answers, for the turn's own user.
 *
 * The catalog is asked at most once per `describe_cache_ms` per node (tools come with modules, not with
 * turns), so a platform offering none pays nothing per turn, and its turns keep the model's plain path.
 */

import type { ModuleContext } from '../../core/module.ts';
import type { LlmTool } from '../../llm/call.ts';

/** `text_chat.tools`. */
export interface ToolsConfig {
  /** False: turns offer the model no tools. */
  enabled: boolean;
  /** Model calls a turn makes at most (each round of tool calls is one more). */
  max_steps: number;
  /** How long one tool call may take before the model is told it failed. */
  call_timeout_ms: number;
  /** How long the catalog of tools is reused before it is asked again. */
  describe_cache_ms: number;
}

/** A tool as `tools.describe` replies name it. */
export interface ToolDescription {
  name: string;
  description: string;
  inputSchema: Record<string, unknown>;
}

/** A tool call of a turn, as the reply's `metadata.toolCalls` keeps it. */
export interface ToolCallRecord {
  name: string;
  input: unknown;
  output?: unknown;
  error?: string;
}

/** Tool names are event segments (`tools.call.<name>`). */
const TOOL_NAME = /^[a-z][a-z0-9_]{0,63}$/;
/** How long the catalog gather waits for the modules that offer tools. */
const DESCRIBE_TIMEOUT_MS = 1000;

/** The tools of one reply: descriptions that are usable, first offer of a name kept. */
function toolsOf(replies: readonly { data: unknown }[]): ToolDescription[] {
  const tools = new Map<string, ToolDescription>();
  for (const reply of replies) {
    const offered = (reply.data as { tools?: unknown } | null)?.tools;
    if (!Array.isArray(offered)) continue;
    for (const candidate of offered as Partial<ToolDescription>[]) {
      const { name, description, inputSchema } = candidate ?? {};
      if (typeof name !== 'string' || !TOOL_NAME.test(name) || tools.has(name)) continue;
      if (typeof description !== 'string' || typeof inputSchema !== 'object' || inputSchema === null)
        continue;
      tools.set(name, { name, description, inputSchema });
    }
  }
  return [...tools.values()];
}

/** A turn's tools, by name. */
export type TurnTools = Record<string, LlmTool>;

export interface ToolCatalog {
  /**
   * The turn's tools, calling out for `userId` in `sessionId`; undefined when none is offered. Given at
   * once (not as a promise) once the catalog is known: an await costs a turn even with nothing to wait for.
   */
  forTurn(turn: {
    userId: string;
    sessionId: string;
    turnId: string;
  }): TurnTools | undefined | Promise<TurnTools | undefined>;
}

/** The catalog of the tools modules offer, asked over the bus and reused for `describe_cache_ms`. */
export function createToolCatalog(
  ctx: Pick<ModuleContext, 'gather' | 'request' | 'log'>,
  config: ToolsConfig,
): ToolCatalog {
  let cached: { tools: ToolDescription[]; until: number } | undefined;
  let asking: Promise<ToolDescription[]> | undefined;

  function refresh(): Promise<ToolDescription[]> {
    asking ??= ctx
      .gather('tools.describe', {}, { timeout: DESCRIBE_TIMEOUT_MS })
      .then(
        (result) => toolsOf(result.replies),
        (error: unknown) => {
          ctx.log.warn({ err: error }, 'tools.describe failed; turns go on without tools');
          return [];
        },
      )
      .then((tools) => {
        cached = { tools, until: Date.now() + config.describe_cache_ms };
        asking = undefined;
        return tools;
      });
    return asking;
  }

  /** The catalog as a turn's tools: each one calls its module over the bus for the turn's user. */
  function toolsOfTurn(
    tools: ToolDescription[],
    { userId, sessionId, turnId }: { userId: string; sessionId: string; turnId: string },
  ): TurnTools | undefined {
    if (tools.length === 0) return undefined;
    return Object.fromEntries(
      tools.map((description): [string, LlmTool] => [
        description.name,
        {
          description: description.description,
          inputSchema: description.inputSchema,
          execute: (input) =>
            ctx.request(
              `tools.call.${description.name}`,
              { userId, sessionId, input },
              { timeout: config.call_timeout_ms, userId, sessionId, correlationId: turnId },
            ),
        },
      ]),
    );
  }

  return {
    forTurn(turn) {
      if (!config.enabled) return undefined;
      // The catalog is asked the first time; after that, a stale one is used while it is asked again in
      // the background, so no turn but a node's first waits for the gather (over NATS, its late responders).
      if (cached === undefined) return refresh().then((tools) => toolsOfTurn(tools, turn));
      if (cached.until <= Date.now()) void refresh();
      return toolsOfTurn(cached.tools, turn);
    },
  };
}
