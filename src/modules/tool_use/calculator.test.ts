import { describe, expect, it } from 'vitest';
import { calculate } from './calculator.ts';

describe('calculate', () => {
  it('does arithmetic with the usual precedence', () => {
    expect(calculate('(1250 * 0.21) + 17.5')).toBe(280);
    expect(calculate('2 + 3 * 4')).toBe(14);
    expect(calculate('2 ^ 3 ^ 2')).toBe(512);
    expect(calculate('-(4 - 10) % 4')).toBe(2);
    expect(calculate('1.5e3 / .5')).toBe(3000);
  });

  it('refuses what is not arithmetic, saying what', () => {
    expect(() => calculate('process.exit()')).toThrow(/not a number or an operator/);
    expect(() => calculate('(1 + 2')).toThrow(/not closed/);
    expect(() => calculate('1 / 0')).toThrow(/not a finite number/);
    expect(() => calculate('')).toThrow(/empty/);
    expect(() => calculate('1 2')).toThrow(/unexpected "2"/);
  });
});
