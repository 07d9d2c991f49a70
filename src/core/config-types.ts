/**
 * The shape of parley's effective configuration. Platform sections are typed here; each module's slice
 * sits at the top level under the module's name and is typed by the module itself.
 * config/schemas/platform.schema.json is the source of truth for defaults and rules.
 */

import type { JsonSchema } from './module.ts';

/** The top-level keys that belong to the platform rather than to a module. */
export const PLATFORM_SECTIONS = [
  'data_dir',
  'module_dirs',
  'server',
  'storage',
  'bus',
  'security',
  'resource_limits',
  'logging',
  'llm',
  'observability',
] as const;

export type PlatformSection = (typeof PLATFORM_SECTIONS)[number];

export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';

export interface ServerConfig {
  host: string;
  /** POST /v1/hooks/<name>: signed deliveries of other services, emitted on the bus. */
  incoming_webhooks: Record<string, { secret: string; event?: string; tolerance_seconds: number }>;
  port: number;
  body_limit_bytes: number;
  /** Largest document upload (POST /v1/documents, all files together), in bytes. */
  upload_limit_bytes: number;
  /** Most files in one document upload. */
  upload_max_files: number;
  sse_heartbeat_ms: number;
  /**
   * How long a client may take to send a whole request (headers and body) before it is answered 408 and
   * its connection closed; 0: no limit. Does not bound a response (an SSE stream, a WebSocket).
   */
  request_timeout_ms: number;
  /** How long /readyz waits for the storage probe before calling the backend unhealthy. */
  readiness_timeout_ms: number;
  /** Calls of /v1/chat/completions per user per minute; 0 means no limit. */
  completions_per_minute: number;
  /**
   * `web_session_ttl_hours`: lifetime of a web client login (its session cookie). `key_cache`: how long
   * (and for how many keys) an authenticated API key is trusted without a lookup (src/server/principal-cache.ts).
   */
  auth: {
    bootstrap_admin: boolean;
    web_session_ttl_hours: number;
    key_cache: { ttl_ms: number; max_entries: number };
  };
}

export interface StorageConfig {
  backend: 'memory' | 'flatfile' | 'redis' | 's3';
  /** `root` is always set in the effective config: it defaults to `data_dir`. */
  /** `journal`: appends made durable through the append journal (storage/drivers/flatfile-journal.ts). */
  flatfile: { root: string; journal?: boolean };
  /** `auto`: on for single-node backends (flatfile, memory), off for shared ones (redis, s3). */
  cache: { enabled: boolean | 'auto'; ttl_ms: number; max_entries: number; max_bytes: number };
  redis: {
    url: string;
    prefix: string;
    connect_timeout_ms: number;
    command_timeout_ms: number;
    reconnect_max_delay_ms: number;
  };
  s3: {
    endpoint?: string;
    region: string;
    bucket: string;
    prefix: string;
    force_path_style: boolean;
    access_key_id?: string;
    secret_access_key?: string;
    request_timeout_ms: number;
    compact_after_parts: number;
    compaction_age_ms: number;
    cache_bytes: number;
  };
}

export interface BusConfig {
  transport: 'local' | 'nats';
  request_timeout_ms: number;
  gather_timeout_ms: number;
  nats: NatsBusConfig;
}

/** `bus.nats`: the NATS JetStream transport (see docs/bus.md for what each key means). */
export interface NatsBusConfig {
  servers: string | string[];
  stream_prefix: string;
  connect_timeout_ms: number;
  reconnect_wait_ms: number;
  ping_interval_ms: number;
  publish_timeout_ms: number;
  ack_wait_ms: number;
  max_ack_pending: number;
  concurrency: number;
  dedup_window: number;
  no_responders_retry_ms: number;
  gather_settle_ms: number;
  stream: NatsStreamConfig;
}

/** `bus.nats.stream`: the JetStream stream created (or updated) at startup. */
export interface NatsStreamConfig {
  retention: 'limits' | 'interest';
  storage: 'file' | 'memory';
  replicas: number;
  max_age_ms: number;
  max_bytes: number;
  duplicate_window_ms: number;
}

/** `security.encryption`: encryption at rest (src/security/README.md). Off while `keys` is empty. */
export interface EncryptionConfig {
  /** Master key id → base64 of 32 random bytes. */
  keys: Record<string, string>;
  /** The master key that wraps new data keys; may be empty when there is one key. */
  active_key_id: string;
  /** Key patterns (full storage keys) whose values are sealed; `{user}` marks the owning user's segment. */
  sensitive: string[];
  /** Return plaintext found under a sensitive key (written before encryption was on) instead of refusing it. */
  plaintext_reads: boolean;
  /** Unwrapped data keys kept in memory. */
  data_key_cache: { ttl_ms: number; max_entries: number };
}

export interface SecurityConfig {
  /** The hash-chained audit log (src/security/audit-log.ts). */
  audit: { enabled: boolean };
  encryption: EncryptionConfig;
  /** The grant table: capability → names of the modules granted it. */
  capabilities: Record<string, string[]>;
  /** Event type or pattern → the capability needed to emit, request or handle it. */
  event_capabilities: Record<string, string>;
  [key: string]: unknown;
}

export interface ResourceLimitsConfig {
  /** A size such as "512MB"; read it with `parseByteSize`. */
  max_memory_per_module: string;
  /** Wait before restarting a crashed module worker, doubling with each consecutive crash. */
  worker_restart_delay_ms: number;
  /** Consecutive crashes after which a module worker is left down. */
  worker_max_restarts: number;
  max_concurrent_requests: number;
  /** Requests (streams and WebSockets included) one user may have open at once on a node. */
  max_concurrent_requests_per_user: number;
  /** A size such as "100MB"; read it with `parseByteSize`. "0B" turns the quota off. */
  max_storage_per_user: string;
  /** How many users' storage counts a node keeps in memory (the least recently changed beyond are recounted). */
  storage_quota_max_users: number;
  /** Over a networked bus: a user's storage count this old is made again from storage (0: never). */
  storage_quota_recount_ms: number;
}

export interface LoggingConfig {
  level: LogLevel;
}

export interface ObservabilityConfig {
  metrics: {
    enabled: boolean;
    /** Anyone may read /metrics (a scraper inside a private network); otherwise an admin key or `bearer_token`. */
    public: boolean;
    /** A token that opens /metrics and nothing else, so a scraper needs no admin key. */
    bearer_token?: string;
    /** Node's process metrics (CPU, memory, event-loop lag, GC). */
    process_metrics: boolean;
    [key: string]: unknown;
  };
  tracing: {
    enabled: boolean;
    service_name: string;
    /** The collector's OTLP/HTTP traces URL. */
    endpoint: string;
    /** Share of new traces recorded (0–1). */
    sample_ratio: number;
    export_delay_ms: number;
  };
  [key: string]: unknown;
}

/** The keys every module slice has (config/schemas/module.schema.json), defaults filled in. */
export interface ModuleConfig {
  enabled: boolean;
  lazy: boolean;
  setup_timeout_ms: number;
  /** Capabilities granted to the module in addition to the security.capabilities table. */
  capabilities: string[];
  /** The storage folder the module sees as its root (default: the module's name). */
  storage_root?: string;
  /** `worker`: setup and handlers run in a worker thread (core/worker-host.ts). */
  isolation: 'none' | 'worker';
  [key: string]: unknown;
}

/** The effective configuration: platform sections, plus one slice per known module under its name. */
export interface PlatformConfig {
  data_dir: string;
  /** Folders of the user's own modules (src/platform/discover-modules.ts). */
  module_dirs: string[];
  server: ServerConfig;
  storage: StorageConfig;
  bus: BusConfig;
  security: SecurityConfig;
  resource_limits: ResourceLimitsConfig;
  logging: LoggingConfig;
  llm: Record<string, unknown>;
  observability: ObservabilityConfig;
  [moduleName: string]: unknown;
}

/** What `loadConfig` needs to know about one module (core never imports modules). */
export interface ModuleConfigDescriptor {
  name: string;
  /** The module's own defaults: the lowest-priority layer of its slice. */
  defaults?: Record<string, unknown>;
  /** JSON Schema (draft 2020-12 or draft-07) of the module's slice; the common shape is checked too. */
  schema?: JsonSchema;
}
