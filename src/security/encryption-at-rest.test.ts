/**
 * Encryption at rest over real flatfile storage in a temp folder, as the platform stacks it (the data keys
 * under `encryption/` of the same storage): what reaches the disk, what a reader gets back, and what
 * happens when a key is wrong, missing, rotated or destroyed, or a record is altered.
 */

import { randomBytes } from 'node:crypto';
import { cp, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { EncryptionConfig } from '../core/config-types.ts';
import { isPlatformError } from '../core/errors.ts';
import { cacheStorage } from '../storage/cached.ts';
import { createFlatfileStorage } from '../storage/drivers/flatfile.ts';
import { appendJsonLine, readJsonLines } from '../storage/json-lines.ts';
import { readFrom } from '../storage/read-from.ts';
import type { Storage } from '../storage/types.ts';
import { type EncryptionAtRest, prepareEncryptionAtRest } from './encryption-at-rest.ts';

const K1 = randomBytes(32).toString('base64');
const K2 = randomBytes(32).toString('base64');
const ALICE = '0190a1b2-0000-7000-8000-00000000a11c';
const BOB = '0190a1b2-0000-7000-8000-000000000b0b';
const aliceLog = `sessions/${ALICE}/s1/messages.jsonl`;
const bobLog = `sessions/${BOB}/s1/messages.jsonl`;
const SECRET = 'my bank PIN is 4921';

function config(overrides: Partial<EncryptionConfig> = {}): EncryptionConfig {
  return {
    keys: { k1: K1 },
    active_key_id: '',
    sensitive: ['sessions/{user}/**', 'rag/**'],
    plaintext_reads: false,
    data_key_cache: { ttl_ms: 60_000, max_entries: 100 },
    ...overrides,
  };
}

const roots: string[] = [];
const open: Storage[] = [];

afterEach(async () => {
  for (const storage of open.splice(0)) await storage.close();
  for (const root of roots.splice(0)) await rm(root, { recursive: true, force: true });
});

async function newRoot(): Promise<string> {
  const root = await mkdtemp(join(tmpdir(), 'parley-encryption-'));
  roots.push(root);
  return root;
}

/** Encrypted flatfile at `root` with `settings`: a fresh process's view (no key cached). */
function openAt(root: string, settings: EncryptionConfig = config()): EncryptionAtRest {
  const encryption = prepareEncryptionAtRest(settings)(createFlatfileStorage({ root }));
  open.push(encryption.storage);
  return encryption;
}

async function codeOf(promise: Promise<unknown>): Promise<string | undefined> {
  const error = await promise.then(
    () => undefined,
    (caught: unknown) => caught,
  );
  return isPlatformError(error) ? error.code : String(error);
}

describe('what reaches the disk', () => {
  it('holds no plaintext of a message, its metadata or a document, and reads them back', async () => {
    const root = await newRoot();
    const { storage } = openAt(root);
    await appendJsonLine(storage, aliceLog, { role: 'user', content: SECRET });
    await appendJsonLine(storage, aliceLog, { role: 'assistant', content: 'noted' });
    await storage.write(`sessions/${ALICE}/s1/metadata.json`, Buffer.from(`{"title":"${SECRET}"}`));
    await storage.write('rag/documents/doc_1/content.txt', Buffer.from(SECRET));

    for (const key of [aliceLog, `sessions/${ALICE}/s1/metadata.json`, 'rag/documents/doc_1/content.txt']) {
      const onDisk = await readFile(join(root, key), 'utf8');
      expect(onDisk).not.toContain('4921');
      expect(onDisk).not.toContain('content');
      expect(onDisk.startsWith('@')).toBe(true);
    }
    // One line per append: appends stay appends.
    expect((await readFile(join(root, aliceLog), 'utf8')).split('\n')).toHaveLength(3);
    expect(await readJsonLines(storage, aliceLog)).toEqual([
      { role: 'user', content: SECRET },
      { role: 'assistant', content: 'noted' },
    ]);
    expect(Buffer.from((await storage.read('rag/documents/doc_1/content.txt')) ?? []).toString()).toBe(
      SECRET,
    );
  });

  it('leaves keys that are not sensitive as they are', async () => {
    const root = await newRoot();
    const { storage } = openAt(root);
    await storage.write('users/u1.json', Buffer.from('{"name":"alice"}'));
    expect(await readFile(join(root, 'users/u1.json'), 'utf8')).toBe('{"name":"alice"}');
  });

  it('answers readFrom at plaintext offsets, through the read cache as the platform stacks it', async () => {
    const root = await newRoot();
    const storage = cacheStorage(openAt(root).storage, { ttlMs: 60_000, maxEntries: 10, maxBytes: 1024 });
    const lines = Array.from({ length: 40 }, (_, index) => ({
      index,
      text: `line ${index} ${'é'.repeat(index)}`,
    }));
    for (const line of lines) await appendJsonLine(storage, aliceLog, line);
    const whole = Buffer.from((await storage.read(aliceLog)) ?? []);
    for (const offset of [0, 1, 100, whole.length - 30, whole.length, whole.length + 5]) {
      const tail = await readFrom(storage, aliceLog, offset);
      expect(Buffer.from(tail ?? []).equals(whole.subarray(offset)), `offset ${offset}`).toBe(true);
    }
  });

  it('drops a frame torn by a crash, and the next append is read whole', async () => {
    const root = await newRoot();
    await appendJsonLine(openAt(root).storage, aliceLog, { n: 1 });
    await writeFile(join(root, aliceLog), '@AQAAAAAAAAAA', { flag: 'a' }); // a frame cut short, no newline
    const { storage } = openAt(root);
    expect(await readJsonLines(storage, aliceLog)).toEqual([{ n: 1 }]);
    await appendJsonLine(storage, aliceLog, { n: 2 });
    expect(await readJsonLines(storage, aliceLog)).toEqual([{ n: 1 }, { n: 2 }]);
  });
});

describe('integrity', () => {
  it('refuses a record with one character changed', async () => {
    const root = await newRoot();
    await appendJsonLine(openAt(root).storage, aliceLog, { content: SECRET });
    const onDisk = await readFile(join(root, aliceLog), 'utf8');
    const at = onDisk.length - 10;
    const altered = onDisk.slice(0, at) + (onDisk[at] === 'A' ? 'B' : 'A') + onDisk.slice(at + 1);
    await writeFile(join(root, aliceLog), altered);
    expect(await codeOf(openAt(root).storage.read(aliceLog))).toBe('CHAT_ERR_ENCRYPTION_RECORD_INVALID');
  });

  it('refuses a record moved to another key: another session of the same user, or another user', async () => {
    const root = await newRoot();
    const { storage } = openAt(root);
    const otherSession = `sessions/${ALICE}/s2/messages.jsonl`;
    await appendJsonLine(storage, aliceLog, { content: 'alice s1' });
    await appendJsonLine(storage, otherSession, { content: 'alice s2' });
    await appendJsonLine(storage, bobLog, { content: 'bob' });
    await writeFile(join(root, otherSession), await readFile(join(root, aliceLog)), { flag: 'a' });
    await writeFile(join(root, bobLog), await readFile(join(root, aliceLog)), { flag: 'a' });
    const reader = openAt(root).storage;
    expect(await codeOf(reader.read(otherSession))).toBe('CHAT_ERR_ENCRYPTION_RECORD_INVALID');
    // Bob has no data key of that id: his folder holds his own only.
    expect(await codeOf(reader.read(bobLog))).toBe('CHAT_ERR_ENCRYPTION_KEY_MISSING');
  });

  it('refuses plaintext under a sensitive key unless plaintext_reads is on, then reads old and new lines', async () => {
    const root = await newRoot();
    const plain = createFlatfileStorage({ root });
    await plain.append(aliceLog, Buffer.from('{"legacy":true}\n'));
    await plain.close();
    expect(await codeOf(openAt(root).storage.read(aliceLog))).toBe('CHAT_ERR_ENCRYPTION_RECORD_INVALID');
    const { storage } = openAt(root, config({ plaintext_reads: true }));
    await appendJsonLine(storage, aliceLog, { sealed: true });
    expect(await readJsonLines(storage, aliceLog)).toEqual([{ legacy: true }, { sealed: true }]);
  });

  it('seals what was stored in plaintext, so plaintext_reads can stay off', async () => {
    const root = await newRoot();
    const plain = createFlatfileStorage({ root });
    await plain.append(aliceLog, Buffer.from(`{"content":"${SECRET}"}\n`));
    await plain.write(`sessions/${ALICE}/s1/metadata.json`, Buffer.from(`{"title":"${SECRET}"}`));
    await plain.write('users/u1.json', Buffer.from('{"name":"alice"}'));
    await plain.close();
    const { storage } = openAt(root);
    await appendJsonLine(storage, aliceLog, { content: 'sealed already' });

    const sealed = [];
    for (const key of await storage.list('')) if (await storage.sealPlaintext(key)) sealed.push(key);
    expect(sealed.sort()).toEqual([aliceLog, `sessions/${ALICE}/s1/metadata.json`]);
    expect(await readFile(join(root, aliceLog), 'utf8')).not.toContain('4921');
    expect(await readFile(join(root, 'users/u1.json'), 'utf8')).toBe('{"name":"alice"}');
    const reader = openAt(root).storage;
    expect(await readJsonLines(reader, aliceLog)).toEqual([
      { content: SECRET },
      { content: 'sealed already' },
    ]);
    expect(await storage.sealPlaintext(aliceLog)).toBe(false);
  });
});

describe('master keys', () => {
  it('refuses to open data with a different key under the same id, and names a missing id', async () => {
    const root = await newRoot();
    await appendJsonLine(openAt(root).storage, aliceLog, { content: SECRET });
    const wrong = openAt(root, config({ keys: { k1: K2 } })).storage;
    expect(await codeOf(wrong.read(aliceLog))).toBe('CHAT_ERR_ENCRYPTION_KEY_WRONG');
    const missing = openAt(root, config({ keys: { k2: K2 } })).storage;
    expect(await codeOf(missing.read(aliceLog))).toBe('CHAT_ERR_ENCRYPTION_KEY_MISSING');
  });

  it('refuses a malformed key at startup without echoing it', () => {
    for (const keys of [{ k1: 'c2hvcnQ=' }, { k1: `${K1.slice(0, -2)}!=` }]) {
      let caught: unknown;
      try {
        prepareEncryptionAtRest(config({ keys }));
      } catch (error) {
        caught = error;
      }
      expect(isPlatformError(caught, 'CHAT_ERR_CONFIG_INVALID')).toBe(true);
      expect(JSON.stringify(caught) + String(caught)).not.toContain(keys.k1);
    }
    expect(() => prepareEncryptionAtRest(config({ keys: { k1: K1, k2: K2 } }))).toThrow(/active_key_id/);
    expect(() => prepareEncryptionAtRest(config({ active_key_id: 'k9' }))).toThrow(/k9/);
  });

  it('rotation: old data stays readable, new keys use the new master key, rewrap frees the old one', async () => {
    const root = await newRoot();
    await appendJsonLine(openAt(root).storage, aliceLog, { before: 'rotation' });

    const both = config({ keys: { k1: K1, k2: K2 }, active_key_id: 'k2' });
    const rotated = openAt(root, both);
    expect(await readJsonLines(rotated.storage, aliceLog)).toEqual([{ before: 'rotation' }]);
    await appendJsonLine(rotated.storage, bobLog, { after: 'rotation' });
    expect(await rotated.dataKeys.status()).toEqual({ byMasterKey: { k1: 1, k2: 1 }, shredded: 0 });

    // Without k1, alice's data cannot be opened until her data key is re-wrapped.
    const onlyK2 = config({ keys: { k2: K2 } });
    expect(await codeOf(openAt(root, onlyK2).storage.read(aliceLog))).toBe('CHAT_ERR_ENCRYPTION_KEY_MISSING');
    expect(await rotated.dataKeys.rewrap()).toEqual({ rewrapped: 1, alreadyActive: 1 });
    expect(await rotated.dataKeys.status()).toEqual({ byMasterKey: { k2: 2 }, shredded: 0 });
    const after = openAt(root, onlyK2).storage;
    expect(await readJsonLines(after, aliceLog)).toEqual([{ before: 'rotation' }]);
    expect(await readJsonLines(after, bobLog)).toEqual([{ after: 'rotation' }]);
  });
});

describe('crypto-shredding', () => {
  it("makes a user's data unreadable, in storage and in a backup copy, while others' stays", async () => {
    const root = await newRoot();
    const { storage, dataKeys } = openAt(root);
    await appendJsonLine(storage, aliceLog, { content: SECRET });
    await appendJsonLine(storage, bobLog, { content: 'bob keeps this' });
    const backup = await newRoot();
    await cp(join(root, 'sessions'), join(backup, 'sessions'), { recursive: true });

    expect(await dataKeys.shred({ kind: 'user', userId: ALICE })).toBe(1);
    expect(await codeOf(storage.read(aliceLog))).toBe('CHAT_ERR_ENCRYPTION_DATA_SHREDDED');
    expect(await readJsonLines(storage, bobLog)).toEqual([{ content: 'bob keeps this' }]);

    // The backup of her sessions, put back: still unreadable (the key is gone, not the files).
    await rm(join(root, 'sessions'), { recursive: true });
    await cp(join(backup, 'sessions'), join(root, 'sessions'), { recursive: true });
    const restarted = openAt(root).storage;
    expect(await codeOf(restarted.read(aliceLog))).toBe('CHAT_ERR_ENCRYPTION_DATA_SHREDDED');
    expect(await readJsonLines(restarted, bobLog)).toEqual([{ content: 'bob keeps this' }]);
    // Her key file is a tombstone now: no wrapped key left in it.
    const folder = join(root, 'encryption/data-keys/users', ALICE);
    const names = await readdir(folder);
    expect(names).toHaveLength(1);
    expect(JSON.parse(await readFile(join(folder, names[0]!), 'utf8'))).not.toHaveProperty('wrapped');

    // A new session of hers gets a new key; it is readable, the shredded log is not.
    const newLog = `sessions/${ALICE}/s2/messages.jsonl`;
    await appendJsonLine(restarted, newLog, { content: 'fresh start' });
    expect(await readJsonLines(restarted, newLog)).toEqual([{ content: 'fresh start' }]);
  });
});
