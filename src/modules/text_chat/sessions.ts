import { NotFoundError } from '../../core/errors.ts';
import { newId } from '../../core/ids.ts';
import type { ModuleStorage } from '../../core/module.ts';
import type { Session } from '../../core/types.ts';
import type { SessionMetadata } from './types.ts';

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Session ids are ours (UUIDv7); anything else cannot name a session, and must not name a key. */
const SESSION_ID_PATTERN = /^[A-Za-z0-9_-]{1,128}$/;

/** A user id as one storage key segment ("." and ".." would be refused as keys, so they are escaped). */
function userSegment(userId: string): string {
  const encoded = encodeURIComponent(userId);
  return encoded === '.' || encoded === '..' ? encoded.replaceAll('.', '%2E') : encoded;
}

/** `{user_id}/{session_id}/` under the module's root (`sessions/` in the seed layout). */
function sessionFolder(userId: string, sessionId: string): string {
  return `${userSegment(userId)}/${sessionId}/`;
}

/** The key of a session's message log, `{user_id}/{session_id}/messages.jsonl`. */
export function messagesKey(userId: string, sessionId: string): string {
  return `${sessionFolder(userId, sessionId)}messages.jsonl`;
}

function metadataKey(userId: string, sessionId: string): string {
  return `${sessionFolder(userId, sessionId)}metadata.json`;
}

function notFound(sessionId: string): NotFoundError {
  // The same error for a missing session and for another user's: existence is not revealed.
  return new NotFoundError(`session "${sessionId}" not found`, { details: { sessionId } });
}

/** What a session is created with. */
export interface NewSession {
  title: string;
  personaId?: string;
  model?: string;
}

/** Sessions in storage: `{user_id}/{session_id}/metadata.json` holds the Session. */
export interface SessionStore {
  create(userId: string, fields: NewSession): Promise<Session>;
  /** The user's session; NotFoundError when missing or not the user's. */
  get(userId: string, sessionId: string): Promise<Session>;
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
}

/** Creates the session store over the module's scoped storage. */
export function createSessionStore(storage: ModuleStorage, now: () => Date = () => new Date()): SessionStore {
  // Read-modify-write of metadata.json (title edits, updatedAt after each turn) is serialised per session
  // so two turns finishing together cannot undo each other's change.
  const locks = new Map<string, Promise<unknown>>();

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
    if (!SESSION_ID_PATTERN.test(sessionId)) throw notFound(sessionId);
    const bytes = await storage.read(metadataKey(userId, sessionId));
    if (bytes === undefined) throw notFound(sessionId);
    const session = JSON.parse(decoder.decode(bytes)) as Session;
    // The key already scopes by user; the check guards against a file copied between folders.
    if (session.userId !== userId) throw notFound(sessionId);
    return session;
  }

  async function write(session: Session): Promise<void> {
    await storage.write(metadataKey(session.userId, session.id), encoder.encode(JSON.stringify(session)));
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
    get: read,
    async list(userId) {
      const keys = await storage.list(`${userSegment(userId)}/`);
      const sessionIds = keys
        .filter((key) => key.endsWith('/metadata.json'))
        .map((key) => key.split('/')[1] ?? '')
        .filter((id) => SESSION_ID_PATTERN.test(id));
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
        .sort((a, b) =>
          a.createdAt === b.createdAt ? b.id.localeCompare(a.id) : b.createdAt.localeCompare(a.createdAt),
        );
    },
    update(userId, sessionId, change) {
      return withLock(metadataKey(userId, sessionId), async () => {
        const session = await read(userId, sessionId);
        const metadata = change({ ...(session.metadata as unknown as SessionMetadata) });
        const updated: Session = { ...session, metadata: { ...metadata } };
        await write(updated);
        return updated;
      });
    },
    async delete(userId, sessionId) {
      await read(userId, sessionId);
      const folder = sessionFolder(userId, sessionId);
      const metadata = metadataKey(userId, sessionId);
      // Metadata last: a crash midway leaves a visible session that can be deleted again, not orphans.
      for (const key of await storage.list(folder)) if (key !== metadata) await storage.delete(key);
      await storage.delete(metadata);
    },
  };
}
