/**
 * Hiding secrets when config is shown (`parley config print`, error messages, logs). A key that looks
 * like a secret has its string values replaced by "****", so the reader still sees that a value is set
 * (an empty string or null stays as it is: "not set" is worth seeing too). Numbers and booleans are
 * never secrets, which keeps `max_tokens: 4096` readable.
 */

/** Keys whose string values are secrets. */
export const SECRET_KEY_PATTERN = /key|secret|password|token/i;

/** What a masked secret looks like. */
export const MASK = '****';

// scheme://user:password@host — the password part, wherever a URL carries one.
const URL_PASSWORD = /^([a-z][a-z0-9+.-]*:\/\/[^/?#@:]*:)([^/?#@]+)@/i;

/** True when a config key names a secret. */
export function isSecretKey(key: string): boolean {
  return SECRET_KEY_PATTERN.test(key);
}

/** True when any segment of a JSON pointer (`/storage/s3/secret_access_key`) names a secret. */
export function isSecretPointer(pointer: string): boolean {
  return pointer.split('/').some((segment) => segment !== '' && isSecretKey(segment));
}

/** A deep copy of `value` with secret values and URL passwords replaced by "****". */
export function maskSecrets<T>(value: T): T {
  return maskValue(value, false) as T;
}

/** Masks one string: entirely when it is a secret, otherwise only a password inside a URL. */
export function maskString(text: string, secret: boolean): string {
  if (secret) return text === '' ? text : MASK;
  return text.replace(URL_PASSWORD, `$1${MASK}@`);
}

function maskValue(value: unknown, secret: boolean): unknown {
  if (typeof value === 'string') return maskString(value, secret);
  if (Array.isArray(value)) return value.map((item) => maskValue(item, secret));
  if (value !== null && typeof value === 'object') {
    const copy: Record<string, unknown> = {};
    for (const [key, child] of Object.entries(value))
      copy[key] = maskValue(child, secret || isSecretKey(key));
    return copy;
  }
  return value;
}

/** Like `maskSecrets`, for a value found at `pointer`: everything is masked when the pointer names a secret. */
export function maskSecretsAt<T>(pointer: string, value: T): T {
  return maskValue(value, isSecretPointer(pointer)) as T;
}
