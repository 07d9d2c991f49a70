/**
 * The parley HTTP API as the web client uses it. Same-origin requests only: the session cookie (HttpOnly,
 * set by /v1/auth/login) authenticates them, so no key or token is ever held by page scripts.
 */

/** A session as the server returns it (core Session). */
export interface ChatSession {
  id: string;
  userId: string;
  createdAt: string;
  metadata: { title: string; personaId?: string; model?: string; updatedAt?: string };
}

/** A source a reply cites: a range of one of the user's documents. */
export interface Citation {
  docId: string;
  title: string;
  start: number;
  end: number;
  filename?: string;
  heading?: string;
}

/** A document of the user's library (GET /v1/documents). */
export interface DocumentInfo {
  docId: string;
  title: string;
  filename?: string;
  kind: string;
  sessionId?: string;
  characters?: number;
  bytes?: number;
  chunkCount?: number;
  createdAt: string;
  updatedAt: string;
  content?: string;
}

/** What an upload did with one file. */
export interface UploadResult {
  filename?: string;
  status: 'added' | 'updated' | 'unchanged' | 'failed';
  docId?: string;
  title?: string;
  chunks?: number;
  error?: { code: string; message: string; status: number };
}

/** The passage a citation points at, with some text around it. */
export interface Passage {
  docId: string;
  title: string;
  filename?: string;
  start: number;
  end: number;
  text: string;
  before: string;
  after: string;
  characters: number;
}

/** A message as the server returns it (core Message). */
export interface ChatMessage {
  id: string;
  content: string;
  role: 'user' | 'assistant' | 'system' | 'tool';
  timestamp: string;
  metadata: {
    sessionId?: string;
    model?: string;
    finishReason?: string;
    error?: { code: string; message: string };
    usage?: { inputTokens?: number; outputTokens?: number };
    /** The document passages the reply drew on (when documents were retrieved for it). */
    citations?: Citation[];
    /** The tools the model called for the reply, in order. */
    toolCalls?: ToolCall[];
    /** A regenerated reply: the id of the reply it replaced (no longer listed). */
    replaces?: string;
  };
}

/** A rating of a reply. */
export type ReplyRating = 'up' | 'down';

/** The signed-in user's rating of a reply (GET /v1/sessions/:id/feedback). */
export interface ReplyFeedback {
  messageId: string;
  rating: ReplyRating;
  comment?: string;
  updatedAt: string;
}

/** A tool the model called: what it was given and what came back (`running` while it works). */
export interface ToolCall {
  name: string;
  input: unknown;
  output?: unknown;
  error?: string;
  running?: boolean;
}

/** The signed-in user. */
export interface CurrentUser {
  id: string;
  name: string;
  role: string;
}

/** A model of /v1/models. */
export interface ModelInfo {
  id: string;
  isDefault: boolean;
}

/** A persona of /v1/personas. */
export interface PersonaInfo {
  id: string;
  name: string;
}

/** A memory of the memory module: a message the user wrote, in the chat it was written in. */
export interface Memory {
  id: string;
  /** The chat it was said in. */
  sessionId: string;
  /** When it was said (ISO time). */
  time: string;
  text: string;
}

/** An agent configured on the server (GET /v1/agents). */
export interface AgentInfo {
  id: string;
  name: string;
  systemPrompt: string;
  model?: string;
}

/** An agent a conversation brings itself, rather than naming a configured one. */
export interface GuestAgent {
  name: string;
  systemPrompt: string;
}

/** An agent conversation's record (multi_agent). */
export interface AgentConversation {
  id: string;
  ownerId: string;
  topic: string;
  participants: Array<{ id: string; name: string; systemPrompt: string; model?: string }>;
  rounds: number;
  status: 'running' | 'done' | 'failed' | 'cancelled';
  /** Why it failed, when it did. */
  error?: { code: string; message: string };
  createdAt: string;
  updatedAt: string;
}

/** One thing an agent said. */
export interface Utterance {
  id: string;
  round: number;
  agentId: string;
  name: string;
  content: string;
  time: string;
}

/** A conversation with what was said. */
export interface AgentConversationWithTranscript {
  conversation: AgentConversation;
  transcript: Utterance[];
}

/** What starting an agent conversation asks for (POST /v1/agent-conversations). */
export interface StartAgentConversation {
  topic: string;
  /** Configured agent ids, or agents brought whole; they speak in this order. */
  participants: Array<string | GuestAgent>;
  rounds: number;
}

/** One of the user's messages found by a search (GET /v1/search). */
export interface SearchHit {
  sessionId: string;
  sessionTitle: string;
  messageId: string;
  role: 'user' | 'assistant';
  timestamp: string;
  /** Part of the message around the words found, `…` where it was cut. */
  snippet: string;
  /** The words found: `snippet.slice(start, end)`. */
  highlights: Array<{ start: number; end: number }>;
  score: number;
}

/** The formats a chat can be exported in. */
export type ExportFormat = 'markdown' | 'json';

/** A failed request: HTTP status (0 when the server could not be reached), stable code, message. */
export class ApiError extends Error {
  readonly status: number;
  readonly code: string;
  /** Seconds to wait before retrying (429, 503), when the server said. */
  readonly retryAfterSeconds: number | undefined;

  constructor(status: number, code: string, message: string, retryAfterSeconds?: number) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
    this.retryAfterSeconds = retryAfterSeconds;
  }
}

/** The code of a request that never got an answer (server down, network lost). */
export const NETWORK_ERROR = 'NETWORK';

/** Whether `error` means the server could not be reached. */
export function isNetworkError(error: unknown): boolean {
  return error instanceof ApiError && error.code === NETWORK_ERROR;
}

function retryAfterOf(response: Response, message: string): number | undefined {
  const header = Number(response.headers.get('retry-after'));
  if (Number.isFinite(header) && header > 0) return header;
  const spoken = /retry in (\d+) s/.exec(message);
  return spoken ? Number(spoken[1]) : undefined;
}

/** Turns a non-2xx response into an ApiError with the server's code and message. */
export async function errorOf(response: Response): Promise<ApiError> {
  let code = `HTTP_${response.status}`;
  let message = response.statusText || `the server answered ${response.status}`;
  try {
    const body = (await response.json()) as { error?: { code?: string; message?: string } };
    if (body.error?.code) code = body.error.code;
    if (body.error?.message) message = body.error.message;
  } catch {
    // not JSON: keep the status line
  }
  return new ApiError(response.status, code, message, retryAfterOf(response, message));
}

/** A `fetch` whose network failure is an ApiError too. */
export async function send(path: string, init: RequestInit = {}): Promise<Response> {
  try {
    return await fetch(path, { credentials: 'same-origin', ...init });
  } catch (error) {
    if (error instanceof DOMException && error.name === 'AbortError') throw error;
    throw new ApiError(0, NETWORK_ERROR, 'the server cannot be reached');
  }
}

async function json<T>(method: string, path: string, body?: unknown): Promise<T> {
  const init: RequestInit = { method, headers: { accept: 'application/json' } };
  if (body !== undefined) {
    init.headers = { accept: 'application/json', 'content-type': 'application/json' };
    init.body = JSON.stringify(body);
  }
  const response = await send(path, init);
  if (!response.ok) throw await errorOf(response);
  return (response.status === 204 ? undefined : await response.json()) as T;
}

const sessionPath = (id: string) => `/v1/sessions/${encodeURIComponent(id)}`;
const documentPath = (id: string) => `/v1/documents/${encodeURIComponent(id)}`;
const agentConversationPath = (id: string) => `/v1/agent-conversations/${encodeURIComponent(id)}`;

/** How many hits a search shows. */
export const SEARCH_LIMIT = 30;

/** How many memories a page of the list holds. */
export const MEMORY_PAGE_SIZE = 100;

/**
 * Uploads files as multipart/form-data with XMLHttpRequest, the one browser API that reports upload
 * progress. `onProgress` gets the fraction sent (0–1); once everything is sent the server still parses
 * and indexes, so the caller shows that as a separate step.
 */
function uploadDocuments(
  files: File[],
  onProgress: (fraction: number) => void,
  signal?: AbortSignal,
): Promise<{ documents: UploadResult[] }> {
  return new Promise((resolve, reject) => {
    const form = new FormData();
    for (const file of files) form.append('file', file, file.name);
    const request = new XMLHttpRequest();
    request.open('POST', '/v1/documents');
    request.setRequestHeader('accept', 'application/json');
    request.upload.onprogress = (event) => {
      if (event.lengthComputable) onProgress(event.loaded / event.total);
    };
    request.upload.onload = () => onProgress(1);
    request.onerror = () => reject(new ApiError(0, NETWORK_ERROR, 'the server cannot be reached'));
    request.onabort = () => reject(new DOMException('the upload was cancelled', 'AbortError'));
    request.onload = () => {
      let body: { documents?: UploadResult[]; error?: { code?: string; message?: string } } = {};
      try {
        body = JSON.parse(request.responseText);
      } catch {
        // not JSON: the status says what happened
      }
      if (request.status === 200 || request.status === 207) {
        resolve({ documents: body.documents ?? [] });
        return;
      }
      const retryAfter = Number(request.getResponseHeader('retry-after'));
      reject(
        new ApiError(
          request.status,
          body.error?.code ?? `HTTP_${request.status}`,
          body.error?.message ?? `the server answered ${request.status}`,
          Number.isFinite(retryAfter) && retryAfter > 0 ? retryAfter : undefined,
        ),
      );
    };
    signal?.addEventListener('abort', () => request.abort(), { once: true });
    request.send(form);
  });
}

/** The API calls of the client. */
export const api = {
  /** Exchanges an API key for the session cookie. */
  login: (apiKey: string) => json<{ user: CurrentUser }>('POST', '/v1/auth/login', { apiKey }),
  logout: () => json<void>('POST', '/v1/auth/logout'),
  /** The signed-in user, or an ApiError 401 when the cookie is missing or expired. */
  me: async () => (await json<{ user: CurrentUser }>('GET', '/v1/me')).user,
  listSessions: async () => (await json<{ sessions: ChatSession[] }>('GET', '/v1/sessions')).sessions,
  createSession: (input: { title?: string; personaId?: string; model?: string } = {}) =>
    json<ChatSession>('POST', '/v1/sessions', input),
  updateSession: (id: string, input: { title?: string; personaId?: string | null; model?: string | null }) =>
    json<ChatSession>('PATCH', sessionPath(id), input),
  deleteSession: (id: string) => json<void>('DELETE', sessionPath(id)),
  /** The session's ratings of replies. */
  listFeedback: async (id: string) =>
    (await json<{ feedback: ReplyFeedback[] }>('GET', `${sessionPath(id)}/feedback`)).feedback,
  /** Rates a reply, with a comment if one was given; `null` withdraws the rating. */
  rateReply: (sessionId: string, messageId: string, rating: ReplyRating | null, comment?: string) =>
    rating === null
      ? json<unknown>(
          'DELETE',
          `${sessionPath(sessionId)}/messages/${encodeURIComponent(messageId)}/feedback`,
        )
      : json<ReplyFeedback>(
          'PUT',
          `${sessionPath(sessionId)}/messages/${encodeURIComponent(messageId)}/feedback`,
          comment === undefined ? { rating } : { rating, comment },
        ),
  listMessages: (id: string, before?: string) =>
    json<{ messages: ChatMessage[]; nextCursor?: string }>(
      'GET',
      `${sessionPath(id)}/messages?limit=100${before ? `&before=${encodeURIComponent(before)}` : ''}`,
    ),
  /** The user's messages across all their chats that best match `query`, best first. */
  searchMessages: async (query: string, signal?: AbortSignal) => {
    const response = await send(`/v1/search?q=${encodeURIComponent(query)}&limit=${SEARCH_LIMIT}`, {
      headers: { accept: 'application/json' },
      ...(signal === undefined ? {} : { signal }),
    });
    if (!response.ok) throw await errorOf(response);
    return ((await response.json()) as { hits: SearchHit[] }).hits;
  },
  /** Where a chat downloads as a file (a plain link: the cookie authenticates it). */
  exportUrl: (id: string, format: ExportFormat) => `${sessionPath(id)}/export?format=${format}`,
  cancelTurn: (sessionId: string, turnId: string) =>
    json<unknown>('POST', `${sessionPath(sessionId)}/turns/${encodeURIComponent(turnId)}/cancel`),
  listModels: async (): Promise<ModelInfo[]> => {
    const body = await json<{ data: Array<{ id: string; default?: boolean }> }>('GET', '/v1/models');
    return body.data.map((model) => ({ id: model.id, isDefault: model.default === true }));
  },
  /** The personas, or `undefined` when this server has no persona route. */
  listPersonas: async (): Promise<PersonaInfo[] | undefined> => {
    try {
      const body = await json<{ personas: PersonaInfo[] }>('GET', '/v1/personas');
      return body.personas;
    } catch (error) {
      if (error instanceof ApiError && error.status === 404) return undefined;
      throw error;
    }
  },
  listDocuments: async () => (await json<{ documents: DocumentInfo[] }>('GET', '/v1/documents')).documents,
  getDocument: (id: string) => json<DocumentInfo>('GET', `${documentPath(id)}?content=true`),
  deleteDocument: (id: string) => json<void>('DELETE', documentPath(id)),
  getPassage: (id: string, start: number, end: number, context = 600) =>
    json<Passage>('GET', `${documentPath(id)}/passage?start=${start}&end=${end}&context=${context}`),
  uploadDocuments,
  /** What the memory module remembers of the user, newest first; older ones with `before` (ISO time). */
  listMemories: async (before?: string) =>
    (
      await json<{ memories: Memory[] }>(
        'GET',
        `/v1/memories?limit=${MEMORY_PAGE_SIZE}${before ? `&before=${encodeURIComponent(before)}` : ''}`,
      )
    ).memories,
  forgetMemory: (id: string) =>
    json<{ forgotten: number }>('DELETE', `/v1/memories/${encodeURIComponent(id)}`),
  forgetAllMemories: () => json<{ forgotten: number }>('DELETE', '/v1/memories'),
  listAgents: async () => (await json<{ agents: AgentInfo[] }>('GET', '/v1/agents')).agents,
  listAgentConversations: async () =>
    (await json<{ conversations: AgentConversation[] }>('GET', '/v1/agent-conversations')).conversations,
  getAgentConversation: (id: string) =>
    json<AgentConversationWithTranscript>('GET', agentConversationPath(id)),
  /** Whether the server answers at all (used to find out when a lost connection is back). */
  alive: async () => {
    try {
      const response = await fetch('/healthz', { cache: 'no-store' });
      return response.ok;
    } catch {
      return false;
    }
  },
  sessionPath,
};
