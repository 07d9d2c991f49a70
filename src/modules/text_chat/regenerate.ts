import { PlatformError, ValidationError } from '../../core/errors.ts';
import type { EnvelopeOptions, EventEnvelope } from '../../core/events.ts';
import { newId } from '../../core/ids.ts';
import type { Message } from '../../core/types.ts';
import { lastExchange } from './replies.ts';
import { assertSessionId } from './sessions.ts';
import {
  announceGenerating,
  answerTurn,
  appendedTo,
  countAgainstRateLimit,
  finishedReply,
  historyEndingAt,
  safeEmit,
  startLookups,
  type TurnDependencies,
} from './turn.ts';
import type { MessageRegenerateRequest, SessionMetadata } from './types.ts';
import { storedUserMessage } from './user-message.ts';
import { optionalModelName, optionalTemperature, payloadOf, requiredString } from './validate.ts';

/** A checked `message.regenerate` payload. */
interface RegenerateInput {
  userId: string;
  sessionId: string;
  model: string | undefined;
  temperature: number | undefined;
  stream: boolean;
}

function parseRegenerateInput(data: unknown, eventType: string): RegenerateInput {
  const payload = payloadOf(data, eventType);
  const stream = payload.stream;
  if (stream !== undefined && typeof stream !== 'boolean') {
    throw new ValidationError(`${eventType}: "stream" must be a boolean`, { details: { field: 'stream' } });
  }
  return {
    userId: requiredString(payload, 'userId', eventType),
    sessionId: requiredString(payload, 'sessionId', eventType),
    model: optionalModelName(payload, 'model', eventType),
    temperature: optionalTemperature(payload, eventType),
    stream: stream ?? true,
  };
}

/**
 * `message.regenerate`: another reply to the session's last user message, generated like a turn's (the
 * same persona, knowledge, tools, streaming, cancel and timeout, by the same code: turn.ts `answerTurn`)
 * from the history that message had — the log up to it, so the reply being replaced is not in it. The new
 * reply is appended with `metadata.replaces` naming the reply shown until now (replies.ts), which from
 * then on is out of later turns' history and of the default listing. Counted against the rate limit like
 * a message; refused (409) while another reply of the session is being generated on this node, and when
 * the session has no user message. A failure is a turn's (`chat.response.error`, the request rejected):
 * its partial reply is stored, marked with the error, and the replaced reply stays the current one.
 */
export async function runRegenerate(
  deps: TurnDependencies,
  event: EventEnvelope<MessageRegenerateRequest>,
): Promise<Message> {
  const input = parseRegenerateInput(event.data, event.type);
  const leave = deps.underWay.enterRegeneration(input.userId, input.sessionId);
  try {
    return await regenerate(deps, event, input);
  } finally {
    leave();
  }
}

async function regenerate(
  deps: TurnDependencies,
  event: EventEnvelope<MessageRegenerateRequest>,
  input: RegenerateInput,
): Promise<Message> {
  const { ctx, sessions } = deps;
  const config = ctx.config;
  const { userId, sessionId } = input;
  const turnId = event.correlationId ?? newId();
  countAgainstRateLimit(deps, userId);

  assertSessionId(sessionId);
  const [session, cachedLog] = await Promise.all([
    sessions.get(userId, sessionId),
    deps.history.load(ctx.storage, userId, sessionId),
  ]);
  let log = cachedLog;
  const envelope: EnvelopeOptions = { correlationId: turnId, userId, sessionId };

  // Asked again under the same turn id (its node died and the gateway resent it): a reply it stored is
  // the answer; a failed one is generated again.
  let earlier = log.turn(turnId);
  let exchange = earlier === undefined ? undefined : lastExchange(log);
  if (earlier === undefined || exchange === undefined) {
    log = await deps.history.loadWhole(ctx.storage, userId, sessionId);
    earlier = log.turn(turnId) ?? {};
    exchange = lastExchange(log)!;
  }
  const answered = finishedReply(log, turnId, earlier.reply);
  if (answered !== undefined) {
    await safeEmit(ctx, 'chat.response.end', { turnId, sessionId, message: answered }, envelope);
    return answered;
  }
  const { user, reply: replaced } = exchange;
  if (user === undefined) {
    throw new PlatformError(
      'CHAT_ERR_NOTHING_TO_REGENERATE',
      'this session has no message to answer again: send a message first',
      { details: { sessionId } },
    );
  }

  announceGenerating(deps, { turnId, sessionId, regeneration: true }, envelope);
  const metadata = session.metadata as unknown as SessionMetadata;
  const userTurnId = typeof user.metadata.turnId === 'string' ? user.metadata.turnId : undefined;
  return answerTurn(deps, {
    userId,
    sessionId,
    turnId,
    envelope,
    log,
    sessionModel: metadata.model,
    model: input.model,
    temperature: input.temperature,
    streamed: config.streaming.enabled && input.stream,
    lookups: startLookups(deps, {
      userId,
      sessionId,
      turnId,
      personaId: metadata.personaId,
      query: user.content,
      history: log,
      ownTurnId: userTurnId,
    }),
    historyOf: historyEndingAt(user),
    // Already in the log: only the reply is stored.
    userMessage: storedUserMessage({
      storage: ctx.storage,
      sessions,
      userId,
      sessionId,
      onAppended: appendedTo(deps, userId, sessionId),
    }),
    replyMetadata: replaced === undefined ? {} : { replaces: replaced.id },
  });
}
