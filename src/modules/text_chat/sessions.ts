import { NotFoundError } from '../../core/errors.ts';
import { isIdSegment, newId } from '../../core/ids.ts';
import type { ModuleStorage } from '../../core/module.ts';
import type { Session } from '../../core/types.ts';
import { KeyMemo } from '../../storage/key-memo.ts';
import { NOT_HELD, peek } from '../../storage/peek.ts';
import type { SessionMetadata } from './types.ts';

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Session ids are ours (UUIDv7); anything else cannot name a session, and must not name a key. */

/** A user id as one storage key segment ("." and ".." would be refused as keys, so they are escaped). */
function userSegment(userId: string): string {
  const encoded = encodeURIComponent(userId);
  return encoded === '.' || encoded === '..' ? encoded.replaceAll('.', '%2E') : encoded;
}

/** `{user_id}/`: every session of the user is under it. */
export function userFolder(userId: string): string {
  return `${userSegment(userId)}/`;
}

/** The session id a key under `userFolder` names (`{user_id}/{session_id}/…`), or undefined. */
export function sessionIdOfKey(key: string): string | undefined {
  const sessionId = key.split('/')[1];
  return sessionId !== undefined && isIdSegment(sessionId) ? sessionId : undefined;
}

/** A session's keys, and whose session they were made for. */
interface SessionKeys {
  userId: string;
  folder: string;
  messages: string;
  metadata: string;
}

// Each session's keys, made once: a turn asks for them several times, and each storage layer looks them
// up again — the same string objects are found fast (storage/key-memo.ts). By session id, for the user
// they were made for (another user's request for the id makes its own).
const sessionKeys = new KeyMemo<SessionKeys>();

function keysOf(userId: string, sessionId: string): SessionKeys {
  const known = sessionKeys.get(sessionId);
  if (known !== undefined && known.userId === userId) return known;
  const folder = `${userSegment(userId)}/${sessionId}/`;
  return sessionKeys.remember(sessionId, {
    userId,
    folder,
    messages: `${folder}messages.jsonl`,
    metadata: `${folder}metadata.json`,
  });
}

/** `{user_id}/{session_id}/` under the module's root (`sessions/` in the seed layout). */
export function sessionFolder(userId: string, sessionId: string): string {
  return keysOf(userId, sessionId).folder;
}

/** The key of a session's message log, `{user_id}/{session_id}/messages.jsonl`. */
export function messagesKey(userId: string, sessionId: string): string {
  return keysOf(userId, sessionId).messages;
}

function metadataKey(userId: string, sessionId: string): string {
  return keysOf(userId, sessionId).metadata;
}

function notFound(sessionId: string): NotFoundError {
  // The same error for a missing session and for another user's: existence is not revealed.
  return new NotFoundError(`session "${sessionId}" not found`, { details: { sessionId } });
}

/** Throws the NotFoundError of a missing session when `sessionId` cannot name a session at all. */
export function assertSessionId(sessionId: string): void {
  if (!isIdSegment(sessionId)) throw notFound(sessionId);
}

/** What a session is created with. */
export interface NewSession {
  title: string;
  personaId?: string;
  model?: string;
}

/** Sessions in storage: `{user_id}/{session_id}/metadata.json` holds the Session. */
export interface SessionStore {
  /**
   * Moves the session's `updatedAt` to `time` (a finished turn). The write waits `touchDelayMs`, so the
   * turns of that span share one write and none waits for it; until it is written, this node's `get` and
   * `list` show the new time already. A deleted session is left deleted.
   */
  touch(userId: string, sessionId: string, time: string): void;
  /** Writes every pending `touch` now (shutdown). */
  flush(): Promise<void>;
  create(userId: string, fields: NewSession): Promise<Session>;
  /** The user's session; NotFoundError when missing or not the user's. */
  get(userId: string, sessionId: string): Promise<Session>;
  /**
   * The session as stored, when the storage can tell at once (the read cache holds the metadata; see
   * storage/peek.ts); undefined otherwise: then `get`. Throws like `get` when the session is known to be
   * missing. The object is shared by every caller that peeks the same stored bytes: frozen. Unlike `get`,
   * its `updatedAt` is the stored one, without a touch not written yet: what a turn peeks for is the
   * session's owner and settings, and a copy with the newer time would cost every turn of a busy chat.
   */
  peek(userId: string, sessionId: string): Session | undefined;
  /** NotFoundError when the session is gone (deleted); cheaper than `get`, which parses it. */
  assertExists(userId: string, sessionId: string): Promise<void>;
  /** Whether the session exists, when the storage can tell at once; undefined otherwise (then `assertExists`). */
  existsNow(userId: string, sessionId: string): boolean | undefined;
  /** The user's sessions, newest first. */
  list(userId: string): Promise<Session[]>;
  /** Applies `change` to the metadata (read-modify-write, one at a time per session on this node). */
  update(
    userId: string,
    sessionId: string,
    change: (metadata: SessionMetadata) => SessionMetadata,
  ): Promise<Session>;
  /** Removes the session's messages, then its metadata; NotFoundError when missing. */
  delete(userId: string, sessionId: string): Promise<void>;
  /** Removes every file of the user's sessions (an erased user); resolves with the sessions' ids. */
  eraseUser(userId: string): Promise<string[]>;
}

export interface SessionStoreOptions {
  /** How long a `touch` waits before it is written (text_chat.session_touch_delay_ms). */
  touchDelayMs: number;
  now?: () => Date;
  /** Told when a delayed write fails (it is not retried: the next turn touches again). */
  onTouchError?: (error: unknown, sessionId: string) => void;
}

/** A touch not yet written: the newest time, and whether its write is under way. */
interface PendingTouch {
  userId: string;
  sessionId: string;
  time: string;
  timer: NodeJS.Timeout | undefined;
  /** The write under way (after the timer fired). */
  writing: Promise<void> | undefined;
  /** A newer time that came while the write was under way: written next. */
  next: string | undefined;
}

/** Creates the session store over the module's scoped storage. */
export function createSessionStore(storage: ModuleStorage, options: SessionStoreOptions): SessionStore {
  const now = options.now ?? (() => new Date());
  // Read-modify-write of metadata.json (title edits, updatedAt after turns, deletion) is serialised per
  // session so two changes made together cannot undo each other.
  const locks = new Map<string, Promise<unknown>>();
  const touches = new Map<string, PendingTouch>();
  // Sessions parsed by `peek`, by the cached bytes they were parsed from (the same object until they change).
  const parsed = new WeakMap<Uint8Array, Session>();
  /** Set by flush (shutdown): touches are written at once from then on. */
  let flushing = false;

  async function withLock<T>(key: string, work: () => Promise<T>): Promise<T> {
    const previous = locks.get(key) ?? Promise.resolve();
    const current = previous.then(work, work);
    const settled = current.catch(() => {});
    locks.set(key, settled);
    try {
      return await current;
    } finally {
      if (locks.get(key) === settled) locks.delete(key);
    }
  }

  async function read(userId: string, sessionId: string): Promise<Session> {
    assertSessionId(sessionId);
    const bytes = await storage.read(metadataKey(userId, sessionId));
    if (bytes === undefined) throw notFound(sessionId);
    const session = JSON.parse(decoder.decode(bytes)) as Session;
    // The key already scopes by user; the check guards against a file copied between folders.
    if (session.userId !== userId) throw notFound(sessionId);
    return session;
  }

  async function write(session: Session, options?: { durable?: boolean }): Promise<void> {
    const key = metadataKey(session.userId, session.id);
    await storage.write(key, encoder.encode(JSON.stringify(session)), options);
  }

  /** The session with this node's not-yet-written touch applied. */
  function withTouch(session: Session): Session {
    const pending = touches.get(metadataKey(session.userId, session.id));
    const time = pending?.next ?? pending?.time;
    const metadata = session.metadata as unknown as SessionMetadata;
    if (time === undefined || time <= metadata.updatedAt) return session;
    return { ...session, metadata: { ...session.metadata, updatedAt: time } };
  }

  function update(
    userId: string,
    sessionId: string,
    change: (metadata: SessionMetadata) => SessionMetadata,
    options?: { durable?: boolean },
  ): Promise<Session> {
    return withLock(metadataKey(userId, sessionId), async () => {
      const session = await read(userId, sessionId);
      const metadata = change({ ...(session.metadata as unknown as SessionMetadata) });
      const updated: Session = { ...session, metadata: { ...metadata } };
      await write(updated, options);
      return updated;
    });
  }

  async function writeTouch(key: string, pending: PendingTouch): Promise<void> {
    pending.timer = undefined;
    const time = pending.time;
    try {
      // Not durable (one fsync fewer a session): a crash may leave the updatedAt before it, which the
      // next touch of the session mends; the messages themselves are durable.
      await update(
        pending.userId,
        pending.sessionId,
        (metadata) => (metadata.updatedAt >= time ? metadata : { ...metadata, updatedAt: time }),
        { durable: false },
      );
    } catch (error) {
      // Deleted meanwhile: nothing to touch.
      if (!(error instanceof NotFoundError)) options.onTouchError?.(error, pending.sessionId);
    }
    if (touches.get(key) !== pending) return;
    if (pending.next === undefined) {
      touches.delete(key);
      return;
    }
    pending.time = pending.next;
    pending.next = undefined;
    if (flushing) await writeTouch(key, pending);
    else schedule(key, pending);
  }

  function schedule(key: string, pending: PendingTouch): void {
    pending.writing = undefined;
    pending.timer = setTimeout(() => {
      pending.writing = writeTouch(key, pending);
    }, options.touchDelayMs);
    pending.timer.unref();
  }

  return {
    async create(userId, fields) {
      const time = now().toISOString();
      const metadata: SessionMetadata = { title: fields.title, updatedAt: time };
      if (fields.personaId !== undefined) metadata.personaId = fields.personaId;
      if (fields.model !== undefined) metadata.model = fields.model;
      const session: Session = { id: newId(), userId, createdAt: time, metadata: { ...metadata } };
      await write(session);
      return session;
    },
    async get(userId, sessionId) {
      return withTouch(await read(userId, sessionId));
    },
    peek(userId, sessionId) {
      assertSessionId(sessionId);
      const bytes = peek(storage, metadataKey(userId, sessionId));
      if (bytes === NOT_HELD) return undefined;
      if (bytes === undefined) throw notFound(sessionId);
      let session = parsed.get(bytes);
      if (session === undefined) {
        session = JSON.parse(decoder.decode(bytes)) as Session;
        Object.freeze(session.metadata);
        Object.freeze(session);
        parsed.set(bytes, session);
      }
      if (session.userId !== userId) throw notFound(sessionId);
      return session;
    },
    async assertExists(userId, sessionId) {
      assertSessionId(sessionId);
      if (!(await storage.exists(metadataKey(userId, sessionId)))) throw notFound(sessionId);
    },
    existsNow(userId, sessionId) {
      if (!isIdSegment(sessionId)) return false;
      const bytes = peek(storage, metadataKey(userId, sessionId));
      return bytes === NOT_HELD ? undefined : bytes !== undefined;
    },
    touch(userId, sessionId, time) {
      const key = metadataKey(userId, sessionId);
      const pending = touches.get(key);
      if (pending === undefined) {
        const created: PendingTouch = {
          userId,
          sessionId,
          time,
          timer: undefined,
          writing: undefined,
          next: undefined,
        };
        touches.set(key, created);
        schedule(key, created);
      } else if (pending.timer !== undefined) {
        if (time > pending.time) pending.time = time;
      } else if (pending.next === undefined || time > pending.next) {
        pending.next = time;
      }
    },
    async flush() {
      flushing = true;
      const writes: Promise<void>[] = [];
      for (const [key, pending] of touches) {
        if (pending.timer !== undefined) {
          clearTimeout(pending.timer);
          pending.writing = writeTouch(key, pending);
        }
        if (pending.writing !== undefined) writes.push(pending.writing);
      }
      await Promise.all(writes);
    },
    async list(userId) {
      const keys = await storage.list(`${userSegment(userId)}/`);
      const sessionIds = keys
        .filter((key) => key.endsWith('/metadata.json'))
        .map((key) => key.split('/')[1] ?? '')
        .filter((id) => isIdSegment(id));
      const sessions = await Promise.all(
        sessionIds.map((id) =>
          read(userId, id).catch((error: unknown) => {
            // Deleted between list and read: skip it.
            if (error instanceof NotFoundError) return undefined;
            throw error;
          }),
        ),
      );
      return sessions
        .filter((session): session is Session => session !== undefined)
        .map(withTouch)
        .sort((a, b) =>
          a.createdAt === b.createdAt ? b.id.localeCompare(a.id) : b.createdAt.localeCompare(a.createdAt),
        );
    },
    async update(userId, sessionId, change) {
      return withTouch(await update(userId, sessionId, change));
    },
    delete(userId, sessionId) {
      const metadata = metadataKey(userId, sessionId);
      const pending = touches.get(metadata);
      if (pending !== undefined) {
        clearTimeout(pending.timer);
        touches.delete(metadata);
      }
      // Under the session's lock, so a touch or an update cannot write the metadata back afterwards.
      return withLock(metadata, async () => {
        await read(userId, sessionId);
        const folder = sessionFolder(userId, sessionId);
        // Metadata last: a crash midway leaves a visible session that can be deleted again, not orphans.
        for (const key of await storage.list(folder)) if (key !== metadata) await storage.delete(key);
        await storage.delete(metadata);
      });
    },
    async eraseUser(userId) {
      const keys = await storage.list(`${userSegment(userId)}/`);
      const metadataKeys = keys.filter((key) => key.endsWith('/metadata.json'));
      for (const key of metadataKeys) {
        const pending = touches.get(key);
        if (pending !== undefined) clearTimeout(pending.timer);
        touches.delete(key);
      }
      // Every file, not only those of listed sessions: a delete a crash cut short left messages behind.
      // Metadata last, as in delete: a crash midway leaves sessions that can be erased again.
      for (const key of keys) if (!metadataKeys.includes(key)) await storage.delete(key);
      for (const key of metadataKeys) await withLock(key, () => storage.delete(key));
      return metadataKeys.map((key) => key.split('/')[1] ?? '');
    },
  };
}
