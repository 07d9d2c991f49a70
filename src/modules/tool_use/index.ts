import { ValidationError } from '../../core/errors.ts';
import type { EventEnvelope } from '../../core/events.ts';
import { defineModule, type ModuleHandlers } from '../../core/module.ts';
import { calculate } from './calculator.ts';
import defaults from './config.json' with { type: 'json' };
import configSchema from './config.schema.json' with { type: 'json' };

/** `tool_use` config. */
export interface ToolUseConfig {
  builtin: { current_time: boolean; calculator: boolean };
}

/** What `tools.call.<name>` carries: the user the model works for, and the model's input. */
interface ToolCall {
  userId: string;
  sessionId?: string;
  input: unknown;
}

/** A built-in tool: its description for the model, and what runs it. */
interface BuiltinTool {
  description: string;
  inputSchema: Record<string, unknown>;
  run(input: Record<string, unknown>): unknown;
}

const BUILTINS: Record<keyof ToolUseConfig['builtin'], BuiltinTool> = {
  current_time: {
    description:
      'The current date and time. Use it for anything about today, now, or how long ago or until something is.',
    inputSchema: {
      type: 'object',
      properties: {
        timezone: { type: 'string', description: 'An IANA time zone such as "Europe/Lisbon"; default UTC.' },
      },
      additionalProperties: false,
    },
    run(input) {
      const timeZone = typeof input.timezone === 'string' && input.timezone !== '' ? input.timezone : 'UTC';
      const now = new Date();
      let local: string;
      try {
        local = new Intl.DateTimeFormat('en-GB', { timeZone, dateStyle: 'full', timeStyle: 'long' }).format(
          now,
        );
      } catch {
        throw new ValidationError(`"${timeZone}" is not a time zone (an IANA name such as "Europe/Lisbon")`);
      }
      return { iso: now.toISOString(), timezone: timeZone, local };
    },
  },
  calculator: {
    description:
      'Calculates an arithmetic expression exactly: numbers, + - * / % ^ and parentheses. Use it for any sum you would otherwise do in your head.',
    inputSchema: {
      type: 'object',
      properties: { expression: { type: 'string', description: 'For example "(1250 * 0.21) + 17.5".' } },
      required: ['expression'],
      additionalProperties: false,
    },
    run(input) {
      if (typeof input.expression !== 'string') throw new ValidationError('expression must be a string');
      return { expression: input.expression, result: calculate(input.expression) };
    },
  },
};

/**
 * Tool use: offers the model tools through `tools.describe` (the aggregation text_chat gathers) and runs
 * them on `tools.call.<name>`. Its own are the built-ins of `builtin` (the time now, a calculator); any
 * module can offer more the same way. Off by default: the operator chooses what the model may do.
 */
export default defineModule<ToolUseConfig>({
  info: { name: 'tool_use', version: '1.0.0', capabilities: [], dependencies: [] },
  configSchema,
  defaults,
  setup(ctx) {
    const offered = (Object.keys(BUILTINS) as (keyof typeof BUILTINS)[]).filter(
      (name) => ctx.config.builtin[name],
    );
    const handlers: ModuleHandlers = {
      'tools.describe': () => ({
        tools: offered.map((name) => ({
          name,
          description: BUILTINS[name].description,
          inputSchema: BUILTINS[name].inputSchema,
        })),
      }),
    };
    for (const name of offered) {
      handlers[`tools.call.${name}`] = (event: EventEnvelope<ToolCall>) => {
        const input = event.data?.input;
        if (typeof input !== 'object' || input === null || Array.isArray(input)) {
          throw new ValidationError(`${name}: the input must be an object`);
        }
        return BUILTINS[name].run(input as Record<string, unknown>);
      };
    }
    return { handlers, health: () => ({ healthy: true }) };
  },
});
