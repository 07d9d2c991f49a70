/**
 * Routes the streamed events of chat turns to whoever waits for them on this node. One local
 * subscription to `chat.response.*` serves every open stream (a Map lookup per event), rather than one
 * bus subscription per request: the bus would otherwise match every delta against every open stream.
 */

import type { Bus } from '../core/bus-types.ts';
import { errorFromJSON, type PlatformError, type PlatformErrorJSON } from '../core/errors.ts';
import type { EventEnvelope } from '../core/events.ts';
import type { Message } from '../core/types.ts';

/** Where one turn's events go. */
export interface TurnSink {
  delta(text: string): void;
  /** The model called a tool, or the tool answered (`chat.response.tool`). */
  tool?(event: ToolEvent): void;
  end(message: Message): void;
  error(error: PlatformError): void;
  /** The generating node said it is still working on the turn (`chat.response.alive`). */
  alive?(): void;
}

/** The turns this node is streaming. */
export interface TurnHub {
  /** Sends the events of `turnId` to `sink` until the returned function is called. */
  register(turnId: string, sink: TurnSink): () => void;
  /** How many turns are registered (for tests and metrics). */
  size(): number;
  /** Unsubscribes from the bus. */
  close(): void;
}

/**
 * What a client is told of a tool the model called: `chat.response.tool` (text_chat's ChatResponseTool)
 * without the turn's ids, restated here because the server reads events, never a module's types.
 */
export interface ToolEvent {
  phase: 'call' | 'result';
  toolCallId: string;
  name: string;
  input?: unknown;
  output?: unknown;
  error?: string;
}

interface StreamEventData {
  turnId?: string;
  turnIds?: unknown;
  text?: string;
  message?: Message;
  error?: PlatformErrorJSON;
}

/** Subscribes once to `chat.response.*` (local mode: every node sees every event) and dispatches by turn. */
export function createTurnHub(bus: Bus): TurnHub {
  const sinks = new Map<string, TurnSink>();

  const unsubscribe = bus.on(
    'chat.response.*',
    (event: EventEnvelope<unknown>) => {
      const data = event.data as StreamEventData;
      if (event.type === 'chat.response.alive') {
        // One heartbeat names every turn of the node that sent it.
        if (!Array.isArray(data.turnIds)) return;
        for (const id of data.turnIds) if (typeof id === 'string') sinks.get(id)?.alive?.();
        return;
      }
      const turnId = event.correlationId ?? data.turnId;
      if (turnId === undefined) return;
      const sink = sinks.get(turnId);
      if (sink === undefined) return;
      switch (event.type) {
        case 'chat.response.delta':
          if (typeof data.text === 'string') sink.delta(data.text);
          return;
        case 'chat.response.end':
          if (data.message !== undefined) sink.end(data.message);
          return;
        case 'chat.response.tool': {
          const { phase, toolCallId, name, input, output, error } = data as ToolEvent & StreamEventData;
          sink.tool?.({ phase, toolCallId, name, input, output, ...(error === undefined ? {} : { error }) });
          return;
        }
        case 'chat.response.error':
          if (data.error !== undefined) sink.error(errorFromJSON(data.error));
          return;
        default:
          return;
      }
    },
    { mode: 'local', group: 'http' },
  );

  return {
    register(turnId, sink) {
      sinks.set(turnId, sink);
      return () => {
        if (sinks.get(turnId) === sink) sinks.delete(turnId);
      };
    },
    size: () => sinks.size,
    close: unsubscribe,
  };
}
