import { describe, expect, it } from 'vitest';
import { createTokenizer } from './tokenize.ts';

describe('createTokenizer', () => {
  const tokenize = createTokenizer();

  it('lowercases, drops stopwords and stems English words to a shared form', () => {
    expect(tokenize('What are the Effects of Heated Walls on boundary-layer flows?')).toEqual([
      'effect',
      'heat',
      'wall',
      'boundari',
      'layer',
      'flow',
    ]);
    expect(tokenize('flowing')).toEqual(tokenize('flows'));
    // Negations stay: they change what a query asks for.
    expect(tokenize('not stable')).toEqual(['not', 'stabl']);
  });

  it('keeps words of other scripts whole, and folds compatibility forms', () => {
    expect(tokenize('Überschall Düse')).toEqual(['überschall', 'düse']);
    expect(tokenize('ＮＡＣＡ ﬁle')).toEqual(tokenize('NACA file'));
    expect(tokenize('Число Маха 3.5')).toEqual(['число', 'маха', '3', '5']);
  });

  it('cuts scripts written without spaces into words', () => {
    const terms = tokenize('東京大学で空気力学を研究する');
    expect(terms.length).toBeGreaterThan(3);
    expect(terms.join('')).toBe('東京大学で空気力学を研究する');
  });

  it('can keep stopwords and skip stemming', () => {
    expect(createTokenizer({ stopwords: false, stemming: false })('The flows')).toEqual(['the', 'flows']);
  });
});
