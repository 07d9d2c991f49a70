/**
 * One open session: its history (loaded from the server, older pages on demand), the reply being
 * streamed, the composer with its Send/Stop button, Regenerate on the last reply (another reply streams in
 * its place: the server stores it as replacing the old one), the persona and model of the session, and what went
 * wrong, said plainly: a rate limit (with the wait), a provider failure (with Retry), a message the
 * server refused, a lost connection (the screen reconnects and reloads the history).
 */

import { useCallback, useEffect, useLayoutEffect, useMemo, useRef, useState } from 'react';
import { flushSync } from 'react-dom';
import {
  ApiError,
  api,
  type ChatMessage,
  type ChatSession,
  isNetworkError,
  type ModelInfo,
  type PersonaInfo,
  type ReplyRating,
  type ToolCall,
} from '../api.ts';
import { noteDeltaArrival, renderedInFrame, renderedOutsideFrame } from '../paint-timing.ts';
import { streamRegenerate, streamTurn, type TurnCallbacks } from '../stream-turn.ts';
import type { FailureHandlers } from './chat-screen.tsx';
import { Composer } from './composer.tsx';
import { MessageView } from './message-view.tsx';
import { SessionSettings } from './session-settings.tsx';

export interface ConversationProps {
  session: ChatSession;
  models: ModelInfo[];
  personas: PersonaInfo[] | undefined;
  online: boolean;
  /** Changes after a reconnection: the history is loaded again. */
  reloadToken: number;
  failures: FailureHandlers;
  onSessionChanged(session: ChatSession): void;
  /** A message to scroll to and highlight briefly (a search hit chosen); older pages load until it shows. */
  reveal?: MessageToReveal;
}

/** A message of a session to bring into view. A new object each time it is asked for. */
export interface MessageToReveal {
  sessionId: string;
  messageId: string;
}

/** How long a revealed message stays highlighted. */
const REVEAL_HIGHLIGHT_MS = 2500;
/** Older pages loaded at most while looking for a message to reveal (100 messages a page). */
const REVEAL_MAX_PAGES = 50;

/** The reply under way. */
interface Turn {
  turnId: string | undefined;
  text: string;
  stopping: boolean;
  /** The tools the model called so far, by call id (shown while they run). */
  tools: Array<ToolCall & { id: string }>;
}

type Notice =
  | { kind: 'rate-limit'; message: string; until: number }
  | { kind: 'refused'; message: string }
  | { kind: 'error'; message: string };

const DEFAULT_TITLE = 'New chat';
const TITLE_LENGTH = 60;

function titleFrom(content: string): string {
  const line = content.trim().split('\n', 1)[0] ?? '';
  return line.length > TITLE_LENGTH ? `${line.slice(0, TITLE_LENGTH - 1).trimEnd()}…` : line;
}

function localMessage(role: ChatMessage['role'], content: string, sessionId: string): ChatMessage {
  return {
    id: `local-${crypto.randomUUID()}`,
    role,
    content,
    timestamp: new Date().toISOString(),
    metadata: { sessionId },
  };
}

/** Whether a failure to start a turn means the message was not stored (the user can edit and resend). */
function refusedBeforeStoring(error: ApiError): boolean {
  return error.status === 400 || error.status === 404 || error.status === 413 || error.status === 429;
}

/** A conversation. */
export function Conversation({
  session,
  models,
  personas,
  online,
  reloadToken,
  failures,
  onSessionChanged,
  reveal,
}: ConversationProps) {
  const [messages, setMessages] = useState<ChatMessage[]>([]);
  /** The user's ratings of this session's replies, by message id. */
  const [ratings, setRatings] = useState<ReadonlyMap<string, ReplyRating>>(new Map());
  const [olderCursor, setOlderCursor] = useState<string | undefined>();
  const [loading, setLoading] = useState(true);
  const [loadError, setLoadError] = useState<string | undefined>();
  const [turn, setTurn] = useState<Turn | undefined>();
  const [notice, setNotice] = useState<Notice | undefined>();
  const [draft, setDraft] = useState('');
  const [now, setNow] = useState(Date.now);
  const logRef = useRef<HTMLDivElement>(null);
  const stickToBottom = useRef(true);
  const pendingText = useRef('');
  const flushFrame = useRef<number | undefined>(undefined);
  const abort = useRef<AbortController | undefined>(undefined);
  const failuresRef = useRef(failures);
  failuresRef.current = failures;
  const sessionRef = useRef(session);
  sessionRef.current = session;

  const loadHistory = useCallback(async () => {
    setLoading(true);
    try {
      const [page, feedback] = await Promise.all([
        api.listMessages(session.id),
        // Ratings are a nicety: a history without them still shows.
        api.listFeedback(session.id).catch(() => []),
      ]);
      setMessages(page.messages);
      setRatings(new Map(feedback.map((entry) => [entry.messageId, entry.rating])));
      setOlderCursor(page.nextCursor);
      setLoadError(undefined);
      stickToBottom.current = true;
    } catch (error) {
      if (!failuresRef.current.handled(error)) {
        setLoadError(error instanceof Error ? error.message : String(error));
      }
    } finally {
      setLoading(false);
    }
  }, [session.id]);

  // biome-ignore lint/correctness/useExhaustiveDependencies: reloadToken is the trigger
  useEffect(() => {
    if (turn === undefined) void loadHistory();
  }, [loadHistory, reloadToken]);

  // Stop a stream that is still running when the conversation closes (another chat opened).
  useEffect(() => () => abort.current?.abort(), []);

  const loadOlder = useCallback(async () => {
    if (olderCursor === undefined) return;
    const log = logRef.current;
    const fromBottom = log ? log.scrollHeight - log.scrollTop : 0;
    try {
      const page = await api.listMessages(session.id, olderCursor);
      stickToBottom.current = false;
      setMessages((current) => [...page.messages, ...current]);
      setOlderCursor(page.nextCursor);
      // Keep the message the reader was looking at in place.
      requestAnimationFrame(() => {
        if (log) log.scrollTop = log.scrollHeight - fromBottom;
      });
    } catch (error) {
      if (!failuresRef.current.handled(error)) {
        setLoadError(error instanceof Error ? error.message : String(error));
      }
    }
  }, [olderCursor, session.id]);

  // A message asked to be revealed: once the history is loaded, older pages until it is there, then
  // scrolled to the middle of the log, highlighted for a moment and focused (a screen reader reads it).
  const revealed = useRef<MessageToReveal | undefined>(undefined);
  const pagesSought = useRef({ for: undefined as MessageToReveal | undefined, count: 0 });
  // biome-ignore lint/correctness/useExhaustiveDependencies: messages is the trigger (a page loaded may hold it)
  useEffect(() => {
    if (reveal === undefined || revealed.current === reveal || loading) return;
    if (pagesSought.current.for !== reveal) pagesSought.current = { for: reveal, count: 0 };
    const log = logRef.current;
    const element = log?.querySelector<HTMLElement>(`[data-message-id="${CSS.escape(reveal.messageId)}"]`);
    if (element) {
      revealed.current = reveal;
      stickToBottom.current = false;
      element.scrollIntoView({ block: 'center' });
      element.setAttribute('tabindex', '-1');
      element.focus({ preventScroll: true });
      element.classList.add('message-revealed');
      setTimeout(() => element.classList.remove('message-revealed'), REVEAL_HIGHLIGHT_MS);
      return;
    }
    if (olderCursor === undefined || pagesSought.current.count >= REVEAL_MAX_PAGES) return;
    pagesSought.current.count++;
    let cancelled = false;
    api.listMessages(session.id, olderCursor).then(
      (page) => {
        if (cancelled) return;
        stickToBottom.current = false;
        setMessages((current) => [...page.messages, ...current]);
        setOlderCursor(page.nextCursor);
      },
      (error: unknown) => {
        if (!cancelled && !failuresRef.current.handled(error)) {
          setLoadError(error instanceof Error ? error.message : String(error));
        }
      },
    );
    return () => {
      cancelled = true;
    };
  }, [reveal, loading, messages, olderCursor, session.id]);

  // Follow the reply as it grows, unless the reader scrolled up to read something else.
  // biome-ignore lint/correctness/useExhaustiveDependencies: runs after every change of what is shown
  useLayoutEffect(() => {
    const log = logRef.current;
    if (log && stickToBottom.current) log.scrollTop = log.scrollHeight;
  }, [messages, turn?.text, notice]);

  // The rate-limit countdown.
  useEffect(() => {
    if (notice?.kind !== 'rate-limit') return;
    const timer = setInterval(() => {
      setNow(Date.now());
      if (Date.now() >= notice.until) setNotice(undefined);
    }, 250);
    return () => clearInterval(timer);
  }, [notice]);

  const onScroll = useCallback(() => {
    const log = logRef.current;
    if (log) stickToBottom.current = log.scrollHeight - log.scrollTop - log.clientHeight < 48;
  }, []);

  // Deltas are shown once per animation frame, however many arrive in between. The render happens inside
  // the frame callback (flushSync), so this very frame paints it rather than the next one.
  const scheduleFlush = useCallback(() => {
    if (flushFrame.current !== undefined) return;
    flushFrame.current = requestAnimationFrame(() => {
      flushFrame.current = undefined;
      const text = pendingText.current;
      flushSync(() => setTurn((current) => (current === undefined ? current : { ...current, text })));
      renderedInFrame();
    });
  }, []);

  const finishTurn = useCallback(() => {
    if (flushFrame.current !== undefined) cancelAnimationFrame(flushFrame.current);
    flushFrame.current = undefined;
    pendingText.current = '';
    abort.current = undefined;
    setTurn(undefined);
  }, []);

  // What a streamed reply (a message's or a regeneration's) reports, shown as the turn under way.
  const turnCallbacks: TurnCallbacks = useMemo(
    () => ({
      onStart: (turnId) => setTurn((turnNow) => (turnNow ? { ...turnNow, turnId } : turnNow)),
      onDelta: (delta, arrivedAt) => {
        noteDeltaArrival(arrivedAt);
        pendingText.current += delta;
        scheduleFlush();
      },
      onRestart: () => {
        pendingText.current = '';
        scheduleFlush();
      },
      onTool: (event) =>
        setTurn((turnNow) => {
          if (turnNow === undefined) return turnNow;
          if (event.phase === 'call') {
            const call = { id: event.toolCallId, name: event.name, input: event.input, running: true };
            return { ...turnNow, tools: [...turnNow.tools, call] };
          }
          const tools = turnNow.tools.map((call) =>
            call.id === event.toolCallId
              ? {
                  ...call,
                  running: false,
                  output: event.output,
                  ...(event.error ? { error: event.error } : {}),
                }
              : call,
          );
          return { ...turnNow, tools };
        }),
    }),
    [scheduleFlush],
  );

  const sendMessage = useCallback(
    async (content: string) => {
      const text = content.trim();
      if (text === '' || turn !== undefined) return;
      const sessionId = session.id;
      setNotice(undefined);
      setDraft('');
      stickToBottom.current = true;
      const userMessage = localMessage('user', text, sessionId);
      setMessages((current) => [...current, userMessage]);
      pendingText.current = '';
      setTurn({ turnId: undefined, text: '', stopping: false, tools: [] });
      const controller = new AbortController();
      abort.current = controller;

      // The first message names the chat, as in other chat products (the user can rename it).
      const current = sessionRef.current;
      if (current.metadata.title === DEFAULT_TITLE && messages.length === 0) {
        api.updateSession(sessionId, { title: titleFrom(text) }).then(onSessionChanged, () => {});
      }

      try {
        const outcome = await streamTurn(sessionId, text, turnCallbacks, controller.signal);
        if (outcome.kind === 'end') {
          setMessages((list) => [...list, outcome.message]);
        } else {
          // Failed after it started: what was written is kept, with the failure under it.
          const failed = localMessage('assistant', pendingText.current, sessionId);
          failed.metadata.error = { code: outcome.error.code, message: outcome.error.message };
          setMessages((list) => [...list, failed]);
        }
        finishTurn();
        renderedOutsideFrame();
      } catch (error) {
        finishTurn();
        if (error instanceof DOMException && error.name === 'AbortError') {
          // Stopped before the server said which turn it was: the server stored what there was.
          void loadHistory();
          return;
        }
        if (failuresRef.current.handled(error)) return;
        if (error instanceof ApiError && refusedBeforeStoring(error)) {
          // Not stored: take the message back into the box, so nothing typed is lost.
          setMessages((list) => list.filter((message) => message.id !== userMessage.id));
          setDraft(text);
          if (error.status === 429) {
            const wait = error.retryAfterSeconds ?? 5;
            setNotice({ kind: 'rate-limit', message: error.message, until: Date.now() + wait * 1000 });
          } else {
            setNotice({ kind: 'refused', message: error.message });
          }
          return;
        }
        const failed = localMessage('assistant', '', sessionId);
        failed.metadata.error = {
          code: error instanceof ApiError ? error.code : 'CHAT_ERR_INTERNAL',
          message: error instanceof Error ? error.message : String(error),
        };
        setMessages((list) => [...list, failed]);
      }
    },
    [turn, session.id, messages.length, onSessionChanged, turnCallbacks, finishTurn, loadHistory],
  );

  /** Rates a reply at once on screen; a refusal puts the old rating back and says why. */
  const rate = useCallback(
    async (messageId: string, rating: ReplyRating | null, comment?: string) => {
      const sessionId = session.id;
      const before = ratings.get(messageId);
      const show = (value: ReplyRating | undefined) =>
        setRatings((current) => {
          const next = new Map(current);
          if (value === undefined) next.delete(messageId);
          else next.set(messageId, value);
          return next;
        });
      show(rating ?? undefined);
      try {
        await api.rateReply(sessionId, messageId, rating, comment);
      } catch (error) {
        show(before);
        if (failuresRef.current.handled(error)) return;
        setNotice({
          kind: 'error',
          message: `The rating was not saved: ${error instanceof Error ? error.message : String(error)}`,
        });
      }
    },
    [session.id, ratings],
  );

  const regenerate = useCallback(
    async (replyId: string) => {
      if (turn !== undefined) return;
      const replaced = messages.find((message) => message.id === replyId);
      if (replaced === undefined) return;
      const sessionId = session.id;
      setNotice(undefined);
      stickToBottom.current = true;
      // The new reply streams in the old one's place; the old one comes back if none is stored.
      setMessages((list) => list.filter((message) => message.id !== replyId));
      const restore = () =>
        setMessages((list) => (list.some((message) => message.id === replyId) ? list : [...list, replaced]));
      pendingText.current = '';
      setTurn({ turnId: undefined, text: '', stopping: false, tools: [] });
      const controller = new AbortController();
      abort.current = controller;
      try {
        const outcome = await streamRegenerate(sessionId, turnCallbacks, controller.signal);
        if (outcome.kind === 'end') {
          setMessages((list) => [...list, outcome.message]);
        } else {
          // A failed regeneration replaces nothing: the reply stays, and the failure is said above the box.
          restore();
          setNotice({ kind: 'error', message: `No new reply: ${outcome.error.message}` });
        }
        finishTurn();
        renderedOutsideFrame();
      } catch (error) {
        finishTurn();
        if (error instanceof DOMException && error.name === 'AbortError') {
          void loadHistory();
          return;
        }
        restore();
        if (failuresRef.current.handled(error)) return;
        if (error instanceof ApiError && error.status === 429) {
          const wait = error.retryAfterSeconds ?? 5;
          setNotice({ kind: 'rate-limit', message: error.message, until: Date.now() + wait * 1000 });
          return;
        }
        setNotice({
          kind: 'refused',
          message: `No new reply: ${error instanceof Error ? error.message : String(error)}`,
        });
      }
    },
    [turn, messages, session.id, turnCallbacks, finishTurn, loadHistory],
  );

  const stop = useCallback(async () => {
    if (turn === undefined || turn.stopping) return;
    setTurn({ ...turn, stopping: true });
    if (turn.turnId === undefined) {
      abort.current?.abort();
      return;
    }
    try {
      // The stream then ends normally, with the partial reply marked as stopped.
      await api.cancelTurn(session.id, turn.turnId);
    } catch (error) {
      if (!isNetworkError(error)) abort.current?.abort();
    }
  }, [turn, session.id]);

  const retry = useCallback(
    (failedId: string) => {
      // The last user message before the failed reply is asked again.
      const index = messages.findIndex((message) => message.id === failedId);
      const question = messages
        .slice(0, index)
        .reverse()
        .find((message) => message.role === 'user');
      if (question === undefined) return;
      setMessages((list) => list.filter((message) => message.id !== failedId));
      void sendMessage(question.content);
    },
    [messages, sendMessage],
  );

  const lastFailedId = [...messages].reverse().find((message) => message.role === 'assistant')?.metadata.error
    ? [...messages].reverse().find((message) => message.role === 'assistant')?.id
    : undefined;
  // The last reply, when it is the end of the conversation and did not fail, can be asked for again.
  const lastMessage = messages.at(-1);
  const regenerableId =
    lastMessage?.role === 'assistant' && !lastMessage.metadata.error && !lastMessage.id.startsWith('local-')
      ? lastMessage.id
      : undefined;
  const rateLimited = notice?.kind === 'rate-limit' && now < notice.until;
  const waitSeconds = notice?.kind === 'rate-limit' ? Math.max(1, Math.ceil((notice.until - now) / 1000)) : 0;

  return (
    <section className="conversation" aria-labelledby="conversation-title">
      <div className="conversation-header">
        <h1 id="conversation-title" className="conversation-title">
          {session.metadata.title || DEFAULT_TITLE}
        </h1>
        <ul className="export-links" aria-label="Export this chat">
          <li>
            <a href={api.exportUrl(session.id, 'markdown')} download>
              Export as Markdown
            </a>
          </li>
          <li>
            <a href={api.exportUrl(session.id, 'json')} download>
              Export as JSON
            </a>
          </li>
        </ul>
        <SessionSettings
          session={session}
          models={models}
          personas={personas}
          disabled={turn !== undefined}
          failures={failures}
          onSessionChanged={onSessionChanged}
        />
      </div>
      <div
        ref={logRef}
        className="message-log"
        role="log"
        aria-label="Messages"
        aria-live="polite"
        aria-busy={turn !== undefined || loading}
        onScroll={onScroll}
        // A scrollable region must be reachable from the keyboard.
        // biome-ignore lint/a11y/noNoninteractiveTabindex: scroll container
        tabIndex={0}
      >
        {olderCursor !== undefined ? (
          <button type="button" className="ghost load-older" onClick={loadOlder}>
            Load earlier messages
          </button>
        ) : null}
        {loadError ? (
          <div className="banner banner-error" role="alert">
            The history could not be loaded: {loadError}{' '}
            <button type="button" className="ghost" onClick={() => void loadHistory()}>
              Try again
            </button>
          </div>
        ) : null}
        {!loading && messages.length === 0 && turn === undefined && !loadError ? (
          <p className="muted conversation-empty">Send a message to start.</p>
        ) : null}
        {messages.map((message) => (
          <MessageView
            key={message.id}
            message={message}
            {...(message.id === lastFailedId && turn === undefined
              ? { onRetry: () => retry(message.id) }
              : {})}
            {...(message.id === regenerableId && turn === undefined && online
              ? { onRegenerate: () => void regenerate(message.id) }
              : {})}
            {...(message.role === 'assistant' && !message.id.startsWith('local-') && online
              ? {
                  rating: ratings.get(message.id),
                  onRate: (rating, comment) => void rate(message.id, rating, comment),
                }
              : {})}
          />
        ))}
        {turn !== undefined ? (
          <MessageView
            message={{
              id: 'streaming',
              role: 'assistant',
              content: turn.text,
              timestamp: new Date().toISOString(),
              metadata: turn.tools.length === 0 ? {} : { toolCalls: turn.tools },
            }}
            streaming
          />
        ) : null}
      </div>
      {notice ? (
        <div
          className={`banner ${notice.kind === 'rate-limit' ? 'banner-warning' : 'banner-error'} turn-notice`}
          role="alert"
        >
          {notice.kind === 'rate-limit' ? (
            <span>
              <strong>Slow down:</strong> you are sending messages faster than this server allows.{' '}
              {rateLimited ? `You can send again in ${waitSeconds} s.` : 'You can send again now.'}
            </span>
          ) : notice.kind === 'refused' ? (
            <span>
              <strong>Not sent:</strong> {notice.message}
            </span>
          ) : (
            <span>{notice.message}</span>
          )}
          <button type="button" className="ghost" aria-label="Dismiss" onClick={() => setNotice(undefined)}>
            ✕
          </button>
        </div>
      ) : null}
      <Composer
        value={draft}
        onChange={setDraft}
        onSend={sendMessage}
        onStop={stop}
        streaming={turn !== undefined}
        stopping={turn?.stopping === true}
        disabled={!online || rateLimited}
        disabledReason={
          !online ? 'Waiting for the connection…' : rateLimited ? `Wait ${waitSeconds} s…` : undefined
        }
      />
    </section>
  );
}
