import { describe, expect, it } from 'vitest';
import { toolNotice } from './chat-connection.ts';

describe('toolNotice', () => {
  it('shows a tool being called, and a failure, but not a success (the reply says what came of it)', () => {
    expect(toolNotice({ phase: 'call', name: 'calculator' })).toBe('\n[using calculator…]\n');
    expect(toolNotice({ phase: 'result', name: 'calculator' })).toBeUndefined();
    expect(toolNotice({ phase: 'result', name: 'calculator', error: 'division by zero' })).toBe(
      '[calculator failed: division by zero]\n',
    );
  });
});
