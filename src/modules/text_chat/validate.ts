import { ValidationError } from '../../core/errors.ts';

/**
 * Checks of request payloads. Payloads come over the bus from the server (or another node), so every field
 * is checked here and a bad one becomes a 400 naming the field, never a 500 further down.
 */

/** The payload as a record, or a ValidationError. */
export function payloadOf(data: unknown, eventType: string): Record<string, unknown> {
  if (typeof data !== 'object' || data === null || Array.isArray(data)) {
    throw new ValidationError(`${eventType}: the payload must be an object`);
  }
  return data as Record<string, unknown>;
}

/** A required non-empty string field. */
export function requiredString(payload: Record<string, unknown>, field: string, eventType: string): string {
  const value = payload[field];
  if (typeof value !== 'string' || value === '') {
    throw new ValidationError(`${eventType}: "${field}" must be a non-empty string`, { details: { field } });
  }
  return value;
}

/** An optional string field (`undefined` when absent). */
export function optionalString(
  payload: Record<string, unknown>,
  field: string,
  eventType: string,
): string | undefined {
  const value = payload[field];
  if (value === undefined) return undefined;
  if (typeof value !== 'string') {
    throw new ValidationError(`${eventType}: "${field}" must be a string`, { details: { field } });
  }
  return value;
}

/** An optional integer within [minimum, maximum]. */
export function optionalInteger(
  payload: Record<string, unknown>,
  field: string,
  eventType: string,
  minimum: number,
  maximum: number,
): number | undefined {
  const value = payload[field];
  if (value === undefined) return undefined;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < minimum || value > maximum) {
    throw new ValidationError(`${eventType}: "${field}" must be an integer from ${minimum} to ${maximum}`, {
      details: { field, value, minimum, maximum },
    });
  }
  return value;
}

const MODEL_NAME_PATTERN = /^[^:\s]+:\S+$/;

/** An optional "provider:model" name. */
export function optionalModelName(
  payload: Record<string, unknown>,
  field: string,
  eventType: string,
): string | undefined {
  const value = optionalString(payload, field, eventType);
  if (value !== undefined && !MODEL_NAME_PATTERN.test(value)) {
    throw new ValidationError(
      `${eventType}: "${field}" must be "provider:model", for example "openai:gpt-4o-mini"`,
      { details: { field, value } },
    );
  }
  return value;
}

/** An optional sampling temperature, 0 to 2. */
export function optionalTemperature(payload: Record<string, unknown>, eventType: string): number | undefined {
  const value = payload.temperature;
  if (value === undefined) return undefined;
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0 || value > 2) {
    throw new ValidationError(`${eventType}: "temperature" must be a number from 0 to 2`, {
      details: { field: 'temperature', value },
    });
  }
  return value;
}

/** An optional title, trimmed, at most `maxLength` characters. */
export function optionalTitle(
  payload: Record<string, unknown>,
  eventType: string,
  maxLength: number,
): string | undefined {
  const value = optionalString(payload, 'title', eventType);
  if (value === undefined) return undefined;
  const title = value.trim();
  if (codePointLength(title) > maxLength) {
    throw new ValidationError(
      `${eventType}: "title" is longer than ${maxLength} characters (text_chat.max_title_length)`,
      {
        details: { field: 'title', limit: maxLength },
      },
    );
  }
  return title;
}

/** Length in Unicode code points, so an emoji counts as one character, as a user would count it. */
export function codePointLength(text: string): number {
  let length = 0;
  for (let index = 0; index < text.length; index++) {
    const code = text.charCodeAt(index);
    // A high surrogate followed by a low one is one code point.
    if (code >= 0xd800 && code <= 0xdbff && index + 1 < text.length) {
      const next = text.charCodeAt(index + 1);
      if (next >= 0xdc00 && next <= 0xdfff) index++;
    }
    length++;
  }
  return length;
}
