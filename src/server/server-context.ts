import type { Platform } from '../platform/create-platform.ts';
import type { Auth } from '../security/auth.ts';
import type { ChatGateway } from './chat-gateway.ts';

/** What route files get: the platform, auth, the chat gateway and the server's settings from config. */
export interface ServerContext {
  platform: Platform;
  auth: Auth;
  chat: ChatGateway;
  /** server.body_limit_bytes. */
  bodyLimitBytes: number;
  /** server.sse_heartbeat_ms. */
  sseHeartbeatMs: number;
}
