/**
 * Incoming webhooks over real HTTP: a delivery signed the Standard Webhooks way is accepted (202) and
 * emitted on the bus with its payload; a sender's retry of it is answered without a second event; a wrong
 * signature, a changed body, a stale timestamp or missing headers are refused with 401 naming the reason;
 * an unknown hook is a 404.
 */

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signWebhook } from '../../src/security/webhook-signature.ts';
import { waitFor } from '../helpers/cluster.ts';
import { type HttpHarness, startHttpHarness } from './http-harness.ts';

const GITHUB_SECRET = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw';
const BILLING_SECRET = 'billing-secret-0123456789';

let harness: HttpHarness;

beforeAll(async () => {
  harness = await startHttpHarness({
    env: {
      CHAT_SERVER__INCOMING_WEBHOOKS: JSON.stringify({
        github: { secret: GITHUB_SECRET },
        billing: { secret: BILLING_SECRET, event: 'billing.paid', tolerance_seconds: 60 },
      }),
    },
  });
});

afterAll(async () => {
  await harness?.close();
});

/** POSTs `body` to /v1/hooks/`name`, signed with `secret` at `timestamp` (default now). */
function send(name: string, body: string, secret: string, options: { id?: string; timestamp?: number } = {}) {
  const id = options.id ?? `msg_${crypto.randomUUID()}`;
  const timestamp = options.timestamp ?? Math.floor(Date.now() / 1000);
  return harness.call('POST', `/v1/hooks/${name}`, {
    body,
    headers: {
      'content-type': 'application/json',
      'webhook-id': id,
      'webhook-timestamp': String(timestamp),
      'webhook-signature': signWebhook(secret, id, timestamp, body),
    },
  });
}

describe('POST /v1/hooks/:name', () => {
  it('accepts a signed delivery and emits it with its payload, once even when the sender retries', async () => {
    // The body exactly as sent (spacing included): the signature covers the raw bytes.
    const body = '{"action": "opened",  "number": 42}';
    const first = await send('github', body, GITHUB_SECRET, { id: 'msg_pr42' });
    expect(first).toMatchObject({ status: 202, body: { accepted: true } });
    await waitFor(() => harness.events('webhook.github').length === 1, 'the event');
    expect(harness.events('webhook.github')[0]?.data).toEqual({
      hook: 'github',
      deliveryId: 'msg_pr42',
      payload: { action: 'opened', number: 42 },
    });

    const retried = await send('github', body, GITHUB_SECRET, { id: 'msg_pr42' });
    expect(retried).toMatchObject({ status: 200, body: { accepted: true, duplicate: true } });
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(harness.events('webhook.github')).toHaveLength(1);
  });

  it('emits under the configured event type, and takes a body that is not JSON as text', async () => {
    expect((await send('billing', 'invoice=7&paid=yes', BILLING_SECRET, { id: 'inv7' })).status).toBe(202);
    await waitFor(() => harness.events('billing.paid').length === 1, 'the event');
    expect(harness.events('billing.paid')[0]?.data).toMatchObject({
      hook: 'billing',
      payload: 'invoice=7&paid=yes',
    });
  });

  it('refuses a wrong or missing signature, a changed body and a stale timestamp with 401, saying why', async () => {
    const wrongSecret = await send('billing', '{}', 'not-the-billing-secret-000');
    expect(wrongSecret.status).toBe(401);
    expect(wrongSecret.body.error.message).toContain('does not match');

    const id = 'msg_changed';
    const timestamp = Math.floor(Date.now() / 1000);
    const changed = await harness.call('POST', '/v1/hooks/billing', {
      body: '{"amount": 1000}',
      headers: {
        'content-type': 'application/json',
        'webhook-id': id,
        'webhook-timestamp': String(timestamp),
        'webhook-signature': signWebhook(BILLING_SECRET, id, timestamp, '{"amount": 10}'),
      },
    });
    expect(changed.status).toBe(401);

    const stale = await send('billing', '{}', BILLING_SECRET, {
      timestamp: Math.floor(Date.now() / 1000) - 3600,
    });
    expect(stale.status).toBe(401);
    expect(stale.body.error.message).toContain('more than 60 s from now');

    const unsigned = await harness.call('POST', '/v1/hooks/billing', { body: '{}' });
    expect(unsigned.status).toBe(401);
    expect(unsigned.body.error.message).toContain('webhook-signature');
    expect(
      harness
        .events('billing.paid')
        .filter((event) => (event.data as { deliveryId: string }).deliveryId !== 'inv7'),
    ).toEqual([]);
  });

  it('answers an unknown hook with 404', async () => {
    const unknown = await send('nobody', '{}', BILLING_SECRET);
    expect(unknown.status).toBe(404);
    expect(unknown.body.error.message).toContain('server.incoming_webhooks');
  });
});
