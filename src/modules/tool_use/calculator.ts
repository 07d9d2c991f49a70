/**
 * Arithmetic for the `calculator` tool, parsed here (never `eval`): numbers, + − × ÷, `%` (remainder),
 * `^` (power, right-associative), unary minus and parentheses. Models are poor at arithmetic and good at
 * writing it down: the tool does the sums.
 */

import { ValidationError } from '../../core/errors.ts';

/** Longest expression taken: a model's sum, not a program. */
const MAX_LENGTH = 500;

/** The value of `expression`; a ValidationError that says what is wrong with it otherwise. */
export function calculate(expression: string): number {
  if (expression.length > MAX_LENGTH) {
    throw new ValidationError(`the expression is longer than ${MAX_LENGTH} characters`);
  }
  const tokens = expression.match(/\d+(?:\.\d+)?(?:e[+-]?\d+)?|\.\d+|[-+*/%^()]|\S/gi) ?? [];
  let position = 0;
  const peek = () => tokens[position];
  const fail = (what: string): never => {
    throw new ValidationError(`cannot calculate "${expression}": ${what}`);
  };

  function primary(): number {
    const token = tokens[position++];
    if (token === undefined) return fail('it ends too early');
    if (token === '(') {
      const value = sum();
      if (tokens[position++] !== ')') fail('a "(" is not closed');
      return value;
    }
    if (token === '-') return -power();
    if (token === '+') return power();
    if (/^(\d|\.)/.test(token)) return Number(token);
    return fail(`"${token}" is not a number or an operator`);
  }
  function power(): number {
    const base = primary();
    if (peek() === '^') {
      position++;
      return base ** power();
    }
    return base;
  }
  function product(): number {
    let value = power();
    for (let operator = peek(); operator === '*' || operator === '/' || operator === '%'; operator = peek()) {
      position++;
      const right = power();
      value = operator === '*' ? value * right : operator === '/' ? value / right : value % right;
    }
    return value;
  }
  function sum(): number {
    let value = product();
    for (let operator = peek(); operator === '+' || operator === '-'; operator = peek()) {
      position++;
      const right = product();
      value = operator === '+' ? value + right : value - right;
    }
    return value;
  }

  if (tokens.length === 0) fail('it is empty');
  const value = sum();
  if (position < tokens.length) fail(`unexpected "${tokens[position]}"`);
  if (!Number.isFinite(value)) fail('the result is not a finite number (a division by zero?)');
  return value;
}
