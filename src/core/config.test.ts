// biome-ignore-all lint/suspicious/noTemplateCurlyInString: these tests are about literal ${ENV_VAR} references.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import {
  ConfigError,
  checkConfig,
  formatConfigForPrint,
  getModuleConfig,
  loadConfig,
  type ModuleConfigDescriptor,
  maskSecrets,
  PLATFORM_SECTIONS,
  type PlatformConfig,
  parseByteSize,
  resolveConfig,
} from './config.ts';

const shippedConfigDir = fileURLToPath(new URL('../../config/', import.meta.url));

const textChat: ModuleConfigDescriptor = {
  name: 'text_chat',
  defaults: { max_message_length: 4096, streaming: { enabled: true, chunk_size: 100 }, tags: ['a', 'b'] },
  schema: {
    $schema: 'http://json-schema.org/draft-07/schema#',
    type: 'object',
    properties: {
      max_message_length: { type: 'integer', minimum: 1, maximum: 65536 },
      streaming: {
        type: 'object',
        properties: { enabled: { type: 'boolean' }, chunk_size: { type: 'integer', default: 100 } },
      },
      tags: { type: 'array', items: { type: 'string' } },
      api_key: { type: 'string' },
    },
  },
};

const directories: string[] = [];
afterEach(() => {
  for (const directory of directories.splice(0)) rmSync(directory, { recursive: true, force: true });
});

/** A temporary config dir holding `files` (path → JSON value, or raw text when a string). */
function configDir(files: Record<string, unknown> = {}): string {
  const directory = mkdtempSync(join(tmpdir(), 'parley-config-'));
  directories.push(directory);
  for (const [path, content] of Object.entries(files)) {
    const file = join(directory, path);
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(file, typeof content === 'string' ? content : JSON.stringify(content, null, 2));
  }
  return directory;
}

function configError(run: () => unknown): ConfigError {
  try {
    run();
  } catch (error) {
    if (error instanceof ConfigError) return error;
    throw error;
  }
  throw new Error('expected a ConfigError');
}

describe('the shipped config/', () => {
  it('loads with no env at all, with the documented defaults', () => {
    const config = loadConfig({ configDir: shippedConfigDir, env: {} });
    expect(config.server).toEqual({
      host: '127.0.0.1',
      port: 3000,
      body_limit_bytes: 1048576,
      upload_limit_bytes: 20971520,
      upload_max_files: 20,
      sse_heartbeat_ms: 15000,
      request_timeout_ms: 120000,
      readiness_timeout_ms: 2000,
      completions_per_minute: 60,
      incoming_webhooks: {},
      auth: {
        bootstrap_admin: true,
        web_session_ttl_hours: 168,
        key_cache: { ttl_ms: 1000, max_entries: 1000 },
      },
    });
    expect(config.storage.backend).toBe('flatfile');
    expect(config.storage.flatfile.root).toBe('./data');
    expect(config.bus.transport).toBe('local');
    expect(config.security.capabilities.write_messages).toEqual(['text_chat']);
    expect(config.resource_limits.max_memory_per_module).toBe('512MB');
    expect(config.logging.level).toBe('debug'); // development is the default NODE_ENV
  });

  it('picks the environment file from NODE_ENV', () => {
    expect(loadConfig({ configDir: shippedConfigDir, env: { NODE_ENV: 'production' } }).logging.level).toBe(
      'info',
    );
    expect(loadConfig({ configDir: shippedConfigDir, env: {}, nodeEnv: 'test' }).logging.level).toBe('warn');
  });

  it('says in default.json exactly what the schemas default to', () => {
    // With no files at all the schema defaults apply; default.json must spell out the same values.
    const fromSchemas = loadConfig({ configDir: configDir(), env: {}, nodeEnv: 'none', modules: [textChat] });
    const fromDefaultJson = loadConfig({
      configDir: shippedConfigDir,
      env: {},
      nodeEnv: 'none',
      modules: [textChat],
    });
    // Platform sections only: config/modules/*.json legitimately configures modules beyond their defaults.
    const platformPart = (config: Readonly<PlatformConfig>) =>
      Object.fromEntries(PLATFORM_SECTIONS.map((section) => [section, config[section]]));
    expect(platformPart(fromDefaultJson)).toEqual(platformPart(fromSchemas));
  });
});

describe('layers', () => {
  it('each layer overrides the one below, and every value knows its source', () => {
    const directory = configDir({
      'default.json': { text_chat: { a: 'default.json', b: 'default.json', c: 'default.json' } },
      'modules/text_chat.json': { text_chat: { a: 'module file', b: 'module file' } },
      'environments/staging.json': { text_chat: { a: 'environment file' } },
    });
    const module = { ...textChat, defaults: { a: 'defaults', b: 'defaults', c: 'defaults', d: 'defaults' } };
    const { config, sources } = resolveConfig({
      configDir: directory,
      env: { NODE_ENV: 'staging', CHAT_TEXT_CHAT__E: 'env' },
      modules: [module],
    });
    expect(config.text_chat).toMatchObject({
      a: 'environment file',
      b: 'module file',
      c: 'default.json',
      d: 'defaults',
      e: 'env',
    });
    expect(sources.get('/text_chat/a')).toBe(join(directory, 'environments/staging.json'));
    expect(sources.get('/text_chat/d')).toBe('defaults of module text_chat');
    expect(sources.get('/text_chat/e')).toBe('env CHAT_TEXT_CHAT__E');
    expect(sources.get('/text_chat/lazy')).toBe('schema default');
  });

  it('env vars beat the environment file', () => {
    const directory = configDir({ 'environments/production.json': { server: { port: 8080 } } });
    const env = { NODE_ENV: 'production', CHAT_SERVER__PORT: '9090' };
    expect(loadConfig({ configDir: directory, env }).server.port).toBe(9090);
  });

  it('merges objects deeply and replaces arrays', () => {
    const directory = configDir({
      'default.json': { text_chat: { streaming: { enabled: false }, tags: ['c'] } },
    });
    const slice = loadConfig({ configDir: directory, env: {}, modules: [textChat] }).text_chat;
    expect(slice).toMatchObject({ streaming: { enabled: false, chunk_size: 100 }, tags: ['c'] });
  });

  it('fills module slices with the common defaults and the module schema defaults', () => {
    const module = { ...textChat, defaults: { streaming: { enabled: true } } };
    const config = loadConfig({ configDir: configDir(), env: {}, modules: [module, { name: 'presence' }] });
    expect(getModuleConfig(config, 'text_chat')).toMatchObject({
      enabled: true,
      lazy: false,
      setup_timeout_ms: 10000,
      capabilities: [],
      streaming: { enabled: true, chunk_size: 100 },
    });
    expect(getModuleConfig(config, 'presence')?.enabled).toBe(true);
    expect(getModuleConfig(config, 'server')).toBeUndefined();
    expect(getModuleConfig(config, 'rag')).toBeUndefined();
  });

  it('lets a module schema forbid unknown keys without listing the common ones', () => {
    const strict = (): ModuleConfigDescriptor => ({
      name: 'memory',
      schema: {
        $id: 'urn:test:memory',
        type: 'object',
        properties: { window: { type: 'integer', default: 20 } },
        additionalProperties: false,
      },
    });
    const directory = configDir({ 'modules/memory.json': { memory: { enabled: false, lazy: true } } });
    const config = loadConfig({ configDir: directory, env: {}, modules: [strict()] });
    expect(config.memory).toEqual({
      enabled: false,
      lazy: true,
      setup_timeout_ms: 10000,
      capabilities: [],
      isolation: 'none',
      window: 20,
    });
    // A second load with a new schema object of the same $id (a reloaded module) works too.
    const error = configError(() =>
      loadConfig({ configDir: directory, env: { CHAT_MEMORY__WINDOE: '5' }, modules: [strict()] }),
    );
    expect(error.message).toContain('env CHAT_MEMORY__WINDOE at /memory/windoe: unknown key "windoe"');
  });

  it('works with no config files at all, more than once', () => {
    for (let round = 0; round < 2; round++) {
      const config = loadConfig({ configDir: join(configDir(), 'missing'), env: {} });
      expect(config.security.capabilities.read_messages).toEqual(['text_chat', 'memory']);
    }
  });

  it('roots flat files at data_dir unless storage.flatfile.root is set', () => {
    const directory = configDir();
    expect(
      loadConfig({ configDir: directory, env: { CHAT_DATA_DIR: '/var/lib/parley' } }).storage.flatfile.root,
    ).toBe('/var/lib/parley');
    const env = { CHAT_DATA_DIR: '/var/lib/parley', CHAT_STORAGE__FLATFILE__ROOT: '/srv/files' };
    expect(loadConfig({ configDir: directory, env }).storage.flatfile.root).toBe('/srv/files');
  });
});

describe('env vars', () => {
  it('map CHAT_A__B to a.b and parse JSON values, else keep the string', () => {
    const env = {
      CHAT_TEXT_CHAT__MAX_MESSAGE_LENGTH: '8192',
      CHAT_TEXT_CHAT__STREAMING__ENABLED: 'false',
      CHAT_TEXT_CHAT__TAGS: '["x","y"]',
      CHAT_BUS__NATS__SERVERS: 'nats://10.0.0.1:4222',
      CHAT_SECURITY__CAPABILITIES: '{"read_messages":["memory"]}',
    };
    const config = loadConfig({ configDir: configDir(), env, modules: [textChat] });
    expect(config.text_chat).toMatchObject({
      max_message_length: 8192,
      streaming: { enabled: false, chunk_size: 100 },
      tags: ['x', 'y'],
    });
    expect(config.bus.nats.servers).toBe('nats://10.0.0.1:4222');
    expect(config.security.capabilities).toEqual({ read_messages: ['memory'] });
  });

  it('keep digits as text where the schema wants a string (a numeric password stays a string)', () => {
    const env = {
      CHAT_STORAGE__REDIS__PREFIX: '123',
      CHAT_TEXT_CHAT__API_KEY: '0042',
      CHAT_SERVER__PORT: '81',
    };
    const config = loadConfig({ configDir: configDir(), env, modules: [textChat] });
    expect(config.storage.redis.prefix).toBe('123');
    expect(config.text_chat).toMatchObject({ api_key: '0042' });
    expect(config.server.port).toBe(81);
  });

  it('reject a name with an empty level', () => {
    const error = configError(() =>
      loadConfig({ configDir: configDir(), env: { CHAT_SERVER____PORT: '1' } }),
    );
    expect(error.message).toContain('CHAT_SERVER____PORT');
  });
});

describe('${ENV_VAR} references', () => {
  it('are replaced from the environment, with defaults and an escape', () => {
    const directory = configDir({
      'default.json': {
        storage: {
          s3: { secret_access_key: '${S3_SECRET}', bucket: 'b-${STAGE:-dev}', prefix: '$${literal}' },
        },
      },
    });
    const config = loadConfig({ configDir: directory, env: { S3_SECRET: 'hush' } });
    expect(config.storage.s3).toMatchObject({
      secret_access_key: 'hush',
      bucket: 'b-dev',
      prefix: '${literal}',
    });
  });

  it('naming an unset variable stop loading, naming file, path and variable', () => {
    const directory = configDir({
      'default.json': { storage: { redis: { url: 'redis://${REDIS_HOST}:6379' } } },
    });
    const error = configError(() => loadConfig({ configDir: directory, env: {} }));
    expect(error.code).toBe('CHAT_ERR_CONFIG_MISSING_ENV');
    expect(error.message).toContain(join(directory, 'default.json'));
    expect(error.message).toContain('/storage/redis/url');
    expect(error.message).toContain('REDIS_HOST');
  });
});

describe('invalid configuration', () => {
  it('names the file, the JSON path, the rule and the value', () => {
    const directory = configDir({
      'environments/production.json': { text_chat: { max_message_length: 100000 }, server: { port: 'http' } },
    });
    const error = configError(() =>
      loadConfig({ configDir: directory, nodeEnv: 'production', env: {}, modules: [textChat] }),
    );
    expect(error.code).toBe('CHAT_ERR_CONFIG_INVALID');
    expect(error.problems).toHaveLength(2); // every problem at once
    const [portProblem, lengthProblem] = error.message.split('\n').slice(1);
    for (const fact of [
      join(directory, 'environments/production.json'),
      '/text_chat/max_message_length',
      'maximum 65536',
      '100000',
    ]) {
      expect(lengthProblem).toContain(fact);
    }
    expect(portProblem).toContain('/server/port');
    expect(portProblem).toContain('type integer');
    expect(portProblem).toContain('"http"');
  });

  it('names the env var when the value came from one', () => {
    const error = configError(() =>
      loadConfig({ configDir: configDir(), env: { CHAT_BUS__TRANSPORT: 'kafka' } }),
    );
    expect(error.message).toContain('env CHAT_BUS__TRANSPORT at /bus/transport');
    expect(error.message).toContain('enum ["local","nats"]');
  });

  it('names the module defaults when they are at fault', () => {
    const module = { ...textChat, defaults: { max_message_length: 0 } };
    const error = configError(() => loadConfig({ configDir: configDir(), env: {}, modules: [module] }));
    expect(error.message).toContain('defaults of module text_chat at /text_chat/max_message_length');
  });

  it('rejects an unknown key inside a platform section', () => {
    const directory = configDir({ 'default.json': { server: { prot: 8080 } } });
    const error = configError(() => loadConfig({ configDir: directory, env: {} }));
    expect(error.message).toContain('/server/prot');
    expect(error.message).toContain('unknown key "prot"');
  });

  it('rejects an unknown top-level key, suggesting the module meant', () => {
    const directory = configDir({ 'default.json': { text_caht: { enabled: true } } });
    const error = configError(() => loadConfig({ configDir: directory, env: {}, modules: [textChat] }));
    expect(error.message).toContain(join(directory, 'default.json'));
    expect(error.message).toContain('/text_caht');
    expect(error.message).toContain('did you mean "text_chat"');
  });

  it('skips, with a warning, a config file for a module that is not installed (its folder was deleted)', () => {
    const directory = configDir({ 'modules/rag.json': { rag: { enabled: true } } });
    const { config, warnings } = resolveConfig({ configDir: directory, env: {}, modules: [textChat] });
    expect(config.rag).toBeUndefined();
    expect(warnings).toEqual([expect.stringContaining('configures module "rag", which is not installed')]);
  });

  it('rejects a module file whose top-level key is not its file name', () => {
    const directory = configDir({ 'modules/text_chat.json': { max_message_length: 10 } });
    const error = configError(() => loadConfig({ configDir: directory, env: {}, modules: [textChat] }));
    expect(error.message).toContain(join(directory, 'modules/text_chat.json'));
    expect(error.message).toContain('{ "text_chat": { ... } }');
  });

  it('reports bad JSON with the file, line and column', () => {
    const directory = configDir({ 'default.json': '{\n  "server": {\n    "port": 3000,\n  }\n}' });
    const error = configError(() => loadConfig({ configDir: directory, env: {} }));
    expect(error.code).toBe('CHAT_ERR_CONFIG_UNREADABLE');
    expect(error.message).toContain(join(directory, 'default.json'));
    expect(error.message).toMatch(/line 4 column 3/);
  });

  it('masks secret values in the error', () => {
    const directory = configDir({ 'default.json': { text_chat: { api_key: ['sk-live-123'] } } });
    const error = configError(() => loadConfig({ configDir: directory, env: {}, modules: [textChat] }));
    expect(error.message).toContain('/text_chat/api_key');
    expect(error.message).not.toContain('sk-live-123');
  });
});

describe('the result', () => {
  it('is deeply frozen', () => {
    const config = loadConfig({ configDir: shippedConfigDir, env: {}, modules: [textChat] });
    expect(() => {
      (config.server as { port: number }).port = 1;
    }).toThrow(TypeError);
    expect(() => {
      (config.security.capabilities.read_messages as string[]).push('rag');
    }).toThrow(TypeError);
    expect(() => {
      (config.text_chat as { streaming: { chunk_size: number } }).streaming.chunk_size = 1;
    }).toThrow(TypeError);
  });
});

describe('config check and print', () => {
  it('checkConfig returns the config, or every problem and the message', () => {
    const good = checkConfig({ configDir: shippedConfigDir, env: {} });
    expect(good.ok).toBe(true);
    const bad = checkConfig({
      configDir: configDir(),
      env: { CHAT_SERVER__PORT: '-1', CHAT_LOGGING__LEVEL: 'loud' },
    });
    expect(bad.ok).toBe(false);
    if (bad.ok) return;
    expect(bad.problems.map((problem) => problem.path)).toEqual(['/server/port', '/logging/level']);
    expect(bad.message).toContain('Invalid configuration (2 problems)');
  });

  it('print masks secrets and URL passwords but shows that they are set', () => {
    const env = {
      CHAT_STORAGE__S3__SECRET_ACCESS_KEY: 'abc123',
      CHAT_STORAGE__REDIS__URL: 'redis://:hunter2@cache:6379/0',
      CHAT_LLM: '{"max_tokens": 512, "providers": {"openai": {"api_key": "sk-1"}}}',
    };
    const { config, sources } = resolveConfig({ configDir: shippedConfigDir, env });
    const printed = formatConfigForPrint(config);
    expect(JSON.parse(printed).storage.s3.secret_access_key).toBe('****');
    expect(JSON.parse(printed).llm).toEqual({ max_tokens: 512, providers: { openai: { api_key: '****' } } });
    expect(printed).toContain('redis://:****@cache:6379/0');
    expect(printed).not.toMatch(/abc123|hunter2|sk-1/);

    const annotated = formatConfigForPrint(config, { sources });
    expect(annotated).toContain(
      '/storage/s3/secret_access_key = "****"  # env CHAT_STORAGE__S3__SECRET_ACCESS_KEY',
    );
    expect(annotated).toContain('/server/port = 3000  # ');
  });

  it('maskSecrets leaves unset secrets visible as unset', () => {
    expect(maskSecrets({ token: '', password: null, api_keys: ['a', 'b'] })).toEqual({
      token: '',
      password: null,
      api_keys: ['****', '****'],
    });
  });
});

describe('parseByteSize', () => {
  it('reads sizes in binary units', () => {
    expect(parseByteSize('512MB')).toBe(512 * 1024 ** 2);
    expect(parseByteSize('100 KB')).toBe(102400);
    expect(parseByteSize('1.5GiB')).toBe(1.5 * 1024 ** 3);
    expect(parseByteSize('10B')).toBe(10);
    expect(() => parseByteSize('lots')).toThrow(TypeError);
  });
});
