/** Core data types shared by every layer (the seed's Message, Session and ModuleInfo). */

/** Who wrote a message. */
export type Role = 'user' | 'assistant' | 'system' | 'tool';

/** One message of a conversation. `timestamp` is ISO-8601. */
export interface Message {
  id: string;
  content: string;
  role: Role;
  timestamp: string;
  metadata: Record<string, unknown>;
}

/** A conversation owned by one user. `createdAt` is ISO-8601. */
export interface Session {
  id: string;
  userId: string;
  createdAt: string;
  metadata: Record<string, unknown>;
}

/** The capabilities a module may be granted (the seed's access-control vocabulary). */
export type Capability =
  | 'read_messages'
  | 'write_messages'
  | 'access_user_data'
  | 'external_api_calls'
  | (string & {});

/** What a module declares about itself. */
export interface ModuleInfo {
  name: string;
  version: string;
  /** Capabilities the module needs; each must be granted in config or calls that need it are denied. */
  capabilities: Capability[];
  /** Modules that must be loaded first; missing ones stop startup. */
  dependencies: string[];
  /** Modules used when present; missing ones are reported to the module, which degrades. */
  optionalDependencies?: string[];
}
