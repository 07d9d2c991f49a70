import type { ModuleContext } from '../../core/module.ts';
import type { TurnRegistry } from './turn-registry.ts';
import type { TextChatConfig } from './types.ts';

/**
 * Says, every `intervalMs` while this node generates replies, which turns it is working on
 * (`chat.response.alive`). Over NATS a turn is a request to one node; if that node dies, nothing else
 * would tell the node waiting for the reply (chat-gateway.ts), which takes a turn that went silent —
 * no delta, no heartbeat — as lost and asks another node. One event per node per interval, whatever the
 * number of turns.
 */
export function startTurnHeartbeat(
  ctx: ModuleContext<TextChatConfig>,
  turns: TurnRegistry,
  intervalMs: number,
): { stop(): void } {
  const timer = setInterval(() => {
    if (turns.activeCount() === 0) return;
    ctx.emit('chat.response.alive', { turnIds: turns.activeIds() }).catch((error: unknown) => {
      // The bus is down: the waiting nodes cannot hear the turns either way; they recover or report.
      ctx.log.debug({ err: error }, 'could not emit the turn heartbeat');
    });
  }, intervalMs);
  timer.unref();
  return { stop: () => clearInterval(timer) };
}
