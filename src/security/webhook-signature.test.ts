import { describe, expect, it } from 'vitest';
import { signWebhook, verifyWebhook } from './webhook-signature.ts';

// The reference vector of the Standard Webhooks spec.
const SECRET = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw';
const ID = 'msg_p5jXN8AQM9LWM0D4loKWxJek';
const TIMESTAMP = 1614265330;
const BODY = '{"test": 2432232314}';
const SIGNATURE = 'v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=';
const at = { nowSeconds: TIMESTAMP + 10, toleranceSeconds: 300 };

describe('webhook signatures', () => {
  it('sign as the spec’s reference vector says', () => {
    expect(signWebhook(SECRET, ID, TIMESTAMP, BODY)).toBe(SIGNATURE);
  });

  it('verify a signed delivery, also among several signatures (a secret being rotated)', () => {
    const headers = { id: ID, timestamp: String(TIMESTAMP), signature: SIGNATURE };
    expect(verifyWebhook(SECRET, headers, BODY, at)).toEqual({ valid: true });
    const rotated = { ...headers, signature: `v1,bm90IHRoaXMgb25l ${SIGNATURE}` };
    expect(verifyWebhook(SECRET, rotated, BODY, at)).toEqual({ valid: true });
  });

  it('refuse a changed body, another secret, a stale timestamp or missing headers, saying which', () => {
    const headers = { id: ID, timestamp: String(TIMESTAMP), signature: SIGNATURE };
    expect(verifyWebhook(SECRET, headers, '{"test": 1}', at)).toMatchObject({
      valid: false,
      reason: /does not match/,
    });
    expect(verifyWebhook('another-secret-0123456789', headers, BODY, at)).toMatchObject({ valid: false });
    expect(
      verifyWebhook(SECRET, headers, BODY, { nowSeconds: TIMESTAMP + 3600, toleranceSeconds: 300 }),
    ).toMatchObject({
      valid: false,
      reason: /more than 300 s/,
    });
    expect(verifyWebhook(SECRET, { ...headers, signature: undefined }, BODY, at)).toMatchObject({
      valid: false,
      reason: /webhook-signature/,
    });
  });
});
