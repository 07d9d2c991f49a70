import { describe, expect, it } from 'vitest';
import { type Place, pathOf, placeOf } from './screen-location.ts';

describe('the address of each screen', () => {
  it('reads every screen from its path, and back', () => {
    const places: Array<[string, Place]> = [
      ['/', { screen: 'chat' }],
      ['/c/01J9ZK3abc_-x', { screen: 'chat', sessionId: '01J9ZK3abc_-x' }],
      ['/documents', { screen: 'documents' }],
      ['/memories', { screen: 'memories' }],
      ['/agents', { screen: 'agents' }],
      ['/agents/0192f4e0-7c1a', { screen: 'agents', conversationId: '0192f4e0-7c1a' }],
    ];
    for (const [path, place] of places) {
      expect(placeOf(path)).toEqual(place);
      expect(pathOf(place)).toBe(path);
    }
  });

  it('takes a trailing slash, and shows the chat screen for a path it does not know', () => {
    expect(placeOf('/memories/')).toEqual({ screen: 'memories' });
    expect(placeOf('/agents/abc/')).toEqual({ screen: 'agents', conversationId: 'abc' });
    expect(placeOf('/agents/a/b')).toEqual({ screen: 'chat' });
    expect(placeOf('/c/../etc')).toEqual({ screen: 'chat' });
    expect(placeOf('/settings')).toEqual({ screen: 'chat' });
  });
});
