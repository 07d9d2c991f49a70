import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { isPlatformError } from '../core/errors.ts';
import { createFlatfileStorage } from './drivers/flatfile.ts';
import { ATTRIBUTED_KEYS_ROOT, chargeStorageTo, type QuotaStorage, quotaStorage } from './quota.ts';
import { createSensitiveKeyMatcher, userKeyPrefixes } from './sensitive-keys.ts';
import type { Storage } from './types.ts';

// The shipped patterns: whose a key is for encryption is whose it is for the quota.
const defaults = JSON.parse(await readFile(new URL('../../config/default.json', import.meta.url), 'utf8'));
const PATTERNS: string[] = defaults.security.encryption.sensitive;

const bytes = (text: string) => new TextEncoder().encode(text);
const line = (size: number) => bytes(`${'x'.repeat(size - 1)}\n`);

let root: string;
const opened: Storage[] = [];

beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), 'parley-quota-'));
});

afterEach(async () => {
  for (const storage of opened.splice(0)) await storage.close().catch(() => undefined);
  await rm(root, { recursive: true, force: true });
});

/**
 * The quota over a flatfile storage in `root` (a new one is a restart; two at once are two nodes sharing
 * the storage).
 */
function open(
  limitBytes: number,
  maxUsers = 100,
  recount: { recountAfterMs?: number; now?: () => number } = {},
): { quota: QuotaStorage; driver: Storage } {
  const driver = createFlatfileStorage({ root });
  const quota = quotaStorage(driver, {
    limitBytes,
    owners: createSensitiveKeyMatcher(PATTERNS),
    prefixesOf: (userId) => userKeyPrefixes(PATTERNS, userId),
    maxUsers,
    ...recount,
  });
  opened.push(quota);
  return { quota, driver };
}

async function refusal(promise: Promise<unknown>) {
  const error = await promise.then(
    () => undefined,
    (caught: unknown) => caught,
  );
  expect(isPlatformError(error, 'CHAT_ERR_STORAGE_QUOTA_EXCEEDED'), String(error)).toBe(true);
  return error as Error & { status: number; details: Record<string, unknown> };
}

const used = async (quota: QuotaStorage, userId: string) => (await quota.usage(userId)).usedBytes;

describe('the storage quota', () => {
  it('counts a write as its size, a rewrite as the new size, an append as more, a delete as none', async () => {
    const { quota } = open(10_000);
    await quota.write('sessions/alice/s1/metadata.json', bytes('x'.repeat(100)));
    expect(await used(quota, 'alice')).toBe(100);
    await quota.write('sessions/alice/s1/metadata.json', bytes('x'.repeat(40)));
    expect(await used(quota, 'alice')).toBe(40);
    await quota.append('sessions/alice/s1/messages.jsonl', line(30));
    await quota.append('sessions/alice/s1/messages.jsonl', line(20));
    expect(await used(quota, 'alice')).toBe(90);
    expect(await quota.delete('sessions/alice/s1/messages.jsonl')).toBe(true);
    expect(await used(quota, 'alice')).toBe(40);
    expect(await quota.delete('sessions/alice/s1/metadata.json')).toBe(true);
    expect(await quota.delete('sessions/alice/s1/metadata.json')).toBe(false);
    expect(await quota.usage('alice')).toEqual({ usedBytes: 0, limitBytes: 10_000 });
  });

  it('refuses a write or append past the limit, naming limit, usage and config key; nothing is stored', async () => {
    const { quota } = open(100);
    const log = 'sessions/alice/s1/messages.jsonl';
    await quota.append(log, line(90));
    const appended = await refusal(quota.append(log, line(11)));
    expect(appended.status).toBe(413);
    expect(appended.message).toContain('100 bytes');
    expect(appended.message).toContain('you store 90 bytes');
    expect(appended.message).toContain('resource_limits.max_storage_per_user');
    expect(appended.details).toMatchObject({
      userId: 'alice',
      usedBytes: 90,
      limitBytes: 100,
      requestedBytes: 11,
    });
    await refusal(quota.write('memory/long_term/alice/memory_bank.jsonl', line(11)));
    expect((await quota.read(log))?.length).toBe(90);
    expect(await quota.exists('memory/long_term/alice/memory_bank.jsonl')).toBe(false);
    // Up to the limit exactly is fine; so is anything that shrinks the user.
    await quota.append(log, line(10));
    await quota.write('sessions/alice/s1/metadata.json', new Uint8Array());
    expect(await used(quota, 'alice')).toBe(100);
    await quota.write(log, line(50));
    expect(await used(quota, 'alice')).toBe(50);
  });

  it('never refuses a key of no user, and one user over the limit leaves the others alone', async () => {
    const { quota } = open(100);
    await quota.append('sessions/alice/s1/messages.jsonl', line(100));
    await refusal(quota.append('sessions/alice/s1/messages.jsonl', line(2)));
    for (const key of [
      'users/alice.json',
      'audit/log.jsonl',
      'rag/documents/doc_1/content.txt',
      'memory/short_term/s1/context.json',
    ]) {
      await quota.write(key, line(1000));
    }
    await quota.append('sessions/bob/s2/messages.jsonl', line(100));
    expect(await used(quota, 'alice')).toBe(100);
    expect(await used(quota, 'bob')).toBe(100);
  });

  it('counts keys that do not name their user to the user chargeStorageTo names, also after a restart', async () => {
    const first = open(1000);
    await chargeStorageTo('alice', async () => {
      await first.quota.write('rag/documents/doc_a/content.txt', bytes('a'.repeat(300)));
      await first.quota.write('rag/documents/doc_a/metadata.json', bytes('{}'));
    });
    expect(await used(first.quota, 'alice')).toBe(302);
    // A later change of the key is the same user's, named or not.
    await first.quota.write('rag/documents/doc_a/content.txt', bytes('a'.repeat(500)));
    expect(await used(first.quota, 'alice')).toBe(502);
    await refusal(
      chargeStorageTo('alice', () => first.quota.write('rag/documents/doc_b/content.txt', line(600))),
    );
    expect(await first.quota.exists('rag/documents/doc_b/content.txt')).toBe(false);
    await first.quota.close();

    const second = open(1000);
    expect(await used(second.quota, 'alice')).toBe(502);
    await second.quota.delete('rag/documents/doc_a/metadata.json');
    expect(await used(second.quota, 'alice')).toBe(500);
    await second.quota.close();
    const third = open(1000);
    expect(await used(third.quota, 'alice')).toBe(500);
  });

  it('is right after a restart: counted again from what storage holds, including a lower limit', async () => {
    const first = open(10_000);
    await first.quota.append('sessions/alice/s1/messages.jsonl', line(400));
    await first.quota.write('sessions/alice/s1/metadata.json', line(100));
    await first.quota.write('rag/index/bm25/alice.json', line(200));
    await first.quota.append('memory/long_term/alice/memory_bank.jsonl', line(50));
    await first.quota.write('rag/index/bm25/alicia.json', line(999));
    await first.quota.close();

    const second = open(600);
    expect(await second.quota.usage('alice')).toEqual({ usedBytes: 750, limitBytes: 600 });
    expect(await used(second.quota, 'alicia')).toBe(999);
    // Over the new limit: nothing more, but shrinking is allowed.
    await refusal(second.quota.append('sessions/alice/s1/messages.jsonl', line(1)));
    await second.quota.delete('sessions/alice/s1/messages.jsonl');
    expect(await used(second.quota, 'alice')).toBe(350);
    await second.quota.append('sessions/alice/s1/messages.jsonl', line(250));
    await refusal(second.quota.append('sessions/alice/s1/messages.jsonl', line(1)));
  });

  it('lets concurrent appends of one user through up to the limit, never past it', async () => {
    const { quota } = open(1000);
    const results = await Promise.allSettled(
      Array.from({ length: 50 }, (_, index) =>
        quota.append(`sessions/alice/s${index % 3}/messages.jsonl`, line(30)),
      ),
    );
    const stored = results.filter((result) => result.status === 'fulfilled').length;
    expect(stored).toBe(33);
    expect(await used(quota, 'alice')).toBe(990);
    await quota.close();
    expect(await used(open(1000).quota, 'alice')).toBe(990);
  });

  it("keeps the call order of one key's changes while the user is being counted", async () => {
    const first = open(1000);
    await first.quota.write('sessions/alice/s1/metadata.json', bytes('{"v":0}'));
    await first.quota.close();
    const { quota } = open(1000);
    const key = 'sessions/alice/s1/messages.jsonl';
    // Not awaited: all of them wait for alice's count, then go out in the order they came.
    const changes = [
      quota.write(key, line(100)),
      quota.append(key, line(10)),
      quota.delete(key),
      quota.append(key, line(20)),
      quota.write('sessions/alice/s1/metadata.json', bytes('{"v":1}')),
    ];
    await Promise.all(changes);
    expect((await quota.read(key))?.length).toBe(20);
    expect(new TextDecoder().decode(await quota.read('sessions/alice/s1/metadata.json'))).toBe('{"v":1}');
    expect(await used(quota, 'alice')).toBe(27);
  });

  it('forgets an erased user: their list of charged keys goes and their usage reads 0', async () => {
    const { quota, driver } = open(1000);
    await chargeStorageTo('alice', () => quota.write('rag/documents/doc_a/content.txt', line(300)));
    await quota.append('sessions/alice/s1/messages.jsonl', line(100));
    // What the modules do when erasing: delete every key of the user.
    await quota.delete('rag/documents/doc_a/content.txt');
    await quota.delete('sessions/alice/s1/messages.jsonl');
    await quota.forget('alice');
    expect(await driver.list(ATTRIBUTED_KEYS_ROOT)).toEqual([]);
    expect(await used(quota, 'alice')).toBe(0);
  });

  it('keeps at most maxUsers counts and counts a forgotten user again, rightly', async () => {
    const { quota } = open(1000, 2);
    for (const user of ['u1', 'u2', 'u3', 'u1']) {
      await quota.append(`sessions/${user}/s/messages.jsonl`, line(100));
    }
    expect(await used(quota, 'u1')).toBe(200);
    expect(await used(quota, 'u2')).toBe(100);
    expect(await used(quota, 'u3')).toBe(100);
  });

  it('on several nodes, counts a user again once the count is recountAfterMs old, seeing the others', async () => {
    let clock = 0;
    const options = { recountAfterMs: 60_000, now: () => clock };
    const nodeA = open(1_000, 100, options).quota;
    const nodeB = open(1_000, 100, options).quota;
    await nodeB.write('sessions/alice/s1/metadata.json', bytes('x'.repeat(100)));
    await nodeA.write('sessions/alice/s2/metadata.json', bytes('x'.repeat(700)));
    // B counted alice before A stored anything: within the interval it sees only its own bytes.
    expect(await used(nodeA, 'alice')).toBe(800);
    expect(await used(nodeB, 'alice')).toBe(100);
    clock += 60_000;
    // The next change on B waits for B to count alice again from storage, and is counted on top.
    await nodeB.append('sessions/alice/s1/messages.jsonl', line(50));
    expect(await used(nodeB, 'alice')).toBe(850);
    // So B now refuses what would take alice past the limit, though B alone stored 150 bytes.
    await refusal(nodeB.write('sessions/alice/s3/metadata.json', bytes('x'.repeat(200))));
    // Without the option (one node), a count lasts: A, still within its interval, is not asked again.
    const single = open(1_000).quota;
    await single.write('sessions/bob/s1/metadata.json', bytes('x'.repeat(10)));
    await nodeA.write('sessions/bob/s2/metadata.json', bytes('x'.repeat(10)));
    clock += 120_000;
    await single.write('sessions/bob/s1/metadata.json', bytes('x'.repeat(20)));
    expect(await used(single, 'bob')).toBe(20);
  });

  it('counts a user again once none of their changes is under way: none lost, none counted twice', async () => {
    let clock = 0;
    const { quota } = open(100_000, 100, { recountAfterMs: 1_000, now: () => clock });
    const other = open(100_000).quota; // another node
    for (let n = 0; n < 20; n++) await quota.append(`sessions/alice/s${n}/messages.jsonl`, line(100));
    for (let n = 0; n < 5; n++) await other.append(`sessions/alice/o${n}/messages.jsonl`, line(100));
    // Changes under way when the count is due: the count waits until they are settled.
    const underWay = quota.append('sessions/alice/s1/messages.jsonl', line(5));
    clock += 1_000;
    // Changes of keys the count lists, and new keys, made while it is due and runs: appends, a rewrite,
    // a delete.
    await Promise.all([
      underWay,
      ...Array.from({ length: 20 }, (_, n) => quota.append(`sessions/alice/s${n}/messages.jsonl`, line(10))),
      quota.append('sessions/alice/new/messages.jsonl', line(30)),
      quota.write('sessions/alice/s0/metadata.json', bytes('x'.repeat(40))),
      quota.delete('sessions/alice/s19/messages.jsonl'),
    ]);
    // The truth, as a node that counts alice afresh from storage sees it.
    const truth = await used(open(100_000).quota, 'alice');
    expect(truth).toBe(19 * 110 + 5 + 5 * 100 + 30 + 40);
    expect(await used(quota, 'alice')).toBe(truth);
    // The count was made again (a change after the interval, with none under way): the other node's 500.
    await quota.append('sessions/alice/s2/messages.jsonl', line(5));
    expect(await used(quota, 'alice')).toBe(truth + 5);
  });
});

describe('userKeyPrefixes', () => {
  it("gives the prefixes of a user's keys: whole segments, partial ones, encoded ids, a wildcard before", () => {
    expect(userKeyPrefixes(['sessions/{user}/**', 'rag/index/bm25/{user}.json', 'rag/**'], 'u1')).toEqual([
      'sessions/u1/',
      'rag/index/bm25/u1.json',
    ]);
    expect(userKeyPrefixes(['memory/{user}/**'], 'a b')).toEqual(['memory/a b/', 'memory/a%20b/']);
    expect(userKeyPrefixes(['x/*/{user}/**'], 'u1')).toEqual(['x/']);
  });
});
