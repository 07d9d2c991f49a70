import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { NotificationsApi } from '../../src/modules/notifications/types.ts';
import type { PresenceApi, PresenceRecord } from '../../src/modules/presence/types.ts';
import { createPlatform, type Platform } from '../../src/platform/create-platform.ts';

/**
 * The seed's four communication patterns, through the real presence and notifications modules on a real
 * platform (config from ./config, flatfile storage in a temp folder, the in-process bus).
 */
describe('communication patterns through real modules', () => {
  let dataDir: string;
  let platform: Platform;

  beforeAll(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'parley-patterns-'));
    platform = await createPlatform({
      env: { CHAT_DATA_DIR: dataDir, CHAT_LOGGING__LEVEL: 'silent' },
      nodeEnv: 'test',
    });
  });

  afterAll(async () => {
    await platform.close();
    await rm(dataDir, { recursive: true, force: true });
  });

  it('broadcast: user.status_changed reaches both presence and notifications', async () => {
    const notifications = (await platform.modules.getModule<NotificationsApi>('notifications'))!;
    await notifications.watch('bob', 'alice');
    const created: unknown[] = [];
    const stop = platform.bus.on('notification.created', (event) => void created.push(event.data));

    await platform.bus.emit('user.status_changed', { userId: 'alice', status: 'online' });

    const stored = JSON.parse(
      await readFile(join(dataDir, 'presence', 'alice.json'), 'utf8'),
    ) as PresenceRecord;
    expect(stored).toMatchObject({ userId: 'alice', status: 'online' });
    const inbox = await notifications.list('bob');
    expect(inbox.map((n) => n.text)).toEqual(['alice is now online']);
    expect(created).toHaveLength(1);
    stop();
  });

  it('request-response: presence.get answers with the stored status', async () => {
    const reply = await platform.bus.request<PresenceRecord>('presence.get', { userId: 'alice' });
    expect(reply.status).toBe('online');
    const api = (await platform.modules.getModule<PresenceApi>('presence'))!;
    expect((await api.getStatus('alice'))?.status).toBe('online');
  });

  it('request-response: a status outside the allowed list is a validation error, not a crash', async () => {
    const failures: unknown[] = [];
    const stop = platform.bus.on('bus.handler.error', (event) => void failures.push(event.data));
    await platform.bus.emit('user.status_changed', { userId: 'carol', status: 'dancing' });
    expect(JSON.stringify(failures)).toContain('not one of online, away, busy, offline');
    expect(await platform.bus.request('presence.get', { userId: 'carol' })).toBeUndefined();
    stop();
  });

  it('pipeline: stages of two modules run in order, each on the previous output', async () => {
    const result = await platform.bus.pipeline<{ userId: string; status: string; text: string }>(
      ['resolve_status', 'render_notification'],
      { userId: 'alice' },
    );
    expect(result).toEqual({ userId: 'alice', status: 'online', text: 'alice is now online' });
  });

  it('aggregation: user.info gathers a reply from each of the two responders', async () => {
    const result = await platform.bus.gather('user.info', { userId: 'bob' }, { expected: 2, timeout: 1000 });
    const byResponder = Object.fromEntries(result.replies.map((reply) => [reply.responder, reply.data]));
    expect(byResponder).toEqual({ presence: { status: 'unknown' }, notifications: { notifications: 1 } });
    expect(result.timedOut).toBe(false);
    expect(result.missing).toEqual([]);
  });

  it('aggregation: a slow responder is reported late when the timeout passes', async () => {
    const stop = platform.bus.on(
      'user.info',
      () => new Promise((resolve) => setTimeout(() => resolve({ slow: true }), 300)),
      { mode: 'work', group: 'slow_directory' },
    );
    const result = await platform.bus.gather('user.info', { userId: 'bob' }, { expected: 3, timeout: 100 });
    expect(result.replies.map((reply) => reply.responder).sort()).toEqual(['notifications', 'presence']);
    expect(result.timedOut).toBe(true);
    expect(result.missing).toEqual(['slow_directory']);
    stop();
  });
});
