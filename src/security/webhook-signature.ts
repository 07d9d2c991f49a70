/**
 * Webhook signatures the Standard Webhooks way (https://www.standardwebhooks.com), for the deliveries parley
 * sends (the webhooks module) and the ones it receives (`POST /v1/hooks/:name`): `webhook-id`,
 * `webhook-timestamp` (Unix seconds) and `webhook-signature: v1,<base64 HMAC-SHA256 of
 * "{id}.{timestamp}.{raw body}">` — several space-separated while a secret is rotated. A secret written
 * `whsec_<base64>` keys the HMAC with the decoded bytes (the spec's form, so its libraries interoperate);
 * any other secret with its UTF-8 bytes.
 */

import { createHmac, timingSafeEqual } from 'node:crypto';

/** The signature header's value for one delivery. */
export function signWebhook(secret: string, id: string, timestamp: number, body: string): string {
  const key = secret.startsWith('whsec_') ? Buffer.from(secret.slice('whsec_'.length), 'base64') : secret;
  return `v1,${createHmac('sha256', key).update(`${id}.${timestamp}.${body}`).digest('base64')}`;
}

/** The three headers of a received delivery, as they came (any may be missing). */
export interface WebhookHeaders {
  id: string | undefined;
  timestamp: string | undefined;
  signature: string | undefined;
}

/** Whether a received delivery is signed by `secret` and recent; otherwise why not. */
export function verifyWebhook(
  secret: string,
  headers: WebhookHeaders,
  body: string,
  options: { nowSeconds: number; toleranceSeconds: number },
): { valid: true } | { valid: false; reason: string } {
  const { id, timestamp, signature } = headers;
  if (id === undefined || timestamp === undefined || signature === undefined) {
    return { valid: false, reason: 'send the webhook-id, webhook-timestamp and webhook-signature headers' };
  }
  if (!/^\d+$/.test(timestamp)) return { valid: false, reason: 'webhook-timestamp must be Unix seconds' };
  if (Math.abs(options.nowSeconds - Number(timestamp)) > options.toleranceSeconds) {
    // An old delivery sent again (a replay), or a clock far off.
    return { valid: false, reason: `webhook-timestamp is more than ${options.toleranceSeconds} s from now` };
  }
  const expected = Buffer.from(signWebhook(secret, id, Number(timestamp), body));
  const matches = signature
    .split(' ')
    .map((offered) => Buffer.from(offered))
    .some((offered) => offered.length === expected.length && timingSafeEqual(offered, expected));
  return matches ? { valid: true } : { valid: false, reason: 'the webhook-signature does not match' };
}
