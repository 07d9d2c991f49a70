import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  AccessDeniedError,
  ERROR_CODES,
  errorFromJSON,
  isAccessDenied,
  NotFoundError,
  PlatformError,
  TimeoutError,
  toPlatformError,
  ValidationError,
} from './errors.ts';

describe('PlatformError', () => {
  it('serialises to code, message, status and details, and comes back as the same class', () => {
    const error = new ValidationError('title is too long', { details: { max: 200 } });
    const json = JSON.parse(JSON.stringify(error));
    expect(json).toEqual({
      code: 'CHAT_ERR_VALIDATION_INVALID',
      message: 'title is too long',
      status: 400,
      details: { max: 200 },
    });
    const rebuilt = errorFromJSON(json);
    expect(rebuilt).toBeInstanceOf(ValidationError);
    expect(rebuilt.toJSON()).toEqual(json);
  });

  it('rebuilds the specific classes callers test for', () => {
    expect(errorFromJSON(new TimeoutError('late').toJSON())).toBeInstanceOf(TimeoutError);
    expect(isAccessDenied(errorFromJSON(new AccessDeniedError('no').toJSON()))).toBe(true);
    expect(errorFromJSON(new NotFoundError('gone').toJSON()).status).toBe(404);
  });

  it('turns an unknown code from another node into an internal error rather than trusting it', () => {
    const rebuilt = errorFromJSON({ code: 'SOMETHING_ELSE', message: 'odd', status: 418 });
    expect(rebuilt.code).toBe('CHAT_ERR_INTERNAL');
  });

  it('wraps a foreign error as an internal error, keeping it as the cause', () => {
    const cause = new RangeError('boom');
    const wrapped = toPlatformError(cause);
    expect(wrapped).toBeInstanceOf(PlatformError);
    expect(wrapped.status).toBe(500);
    expect(wrapped.cause).toBe(cause);
  });
});

describe('docs/errors.md', () => {
  const doc = readFileSync(resolve(import.meta.dirname, '../../docs/errors.md'), 'utf8');
  it.each(Object.entries(ERROR_CODES))('lists %s with its HTTP status', (code, { status }) => {
    expect(doc).toMatch(new RegExp(`\\| \`${code}\` \\| ${status} \\|`));
  });
});
