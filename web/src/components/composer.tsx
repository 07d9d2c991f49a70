/**
 * The message box: Enter sends, Shift+Enter starts a new line, Escape stops a reply being written. While a
 * reply streams, the Send button becomes Stop.
 */

import { type FormEvent, type KeyboardEvent, useEffect, useRef } from 'react';

export interface ComposerProps {
  value: string;
  onChange(value: string): void;
  onSend(text: string): void;
  onStop(): void;
  streaming: boolean;
  stopping: boolean;
  disabled: boolean;
  disabledReason: string | undefined;
}

/** The composer. */
export function Composer({
  value,
  onChange,
  onSend,
  onStop,
  streaming,
  stopping,
  disabled,
  disabledReason,
}: ComposerProps) {
  const input = useRef<HTMLTextAreaElement>(null);

  // Grow with the text, up to a third of the screen.
  // biome-ignore lint/correctness/useExhaustiveDependencies: measures after each change of the text
  useEffect(() => {
    const box = input.current;
    if (!box) return;
    box.style.height = 'auto';
    box.style.height = `${Math.min(box.scrollHeight, window.innerHeight / 3)}px`;
  }, [value]);

  // Back in the box once the reply is done.
  useEffect(() => {
    if (!streaming) input.current?.focus();
  }, [streaming]);

  function submit(event: FormEvent) {
    event.preventDefault();
    if (streaming) onStop();
    else if (!disabled && value.trim() !== '') onSend(value);
  }

  function onKeyDown(event: KeyboardEvent<HTMLTextAreaElement>) {
    if (event.key === 'Escape' && streaming) {
      event.preventDefault();
      onStop();
      return;
    }
    if (event.key === 'Enter' && !event.shiftKey && !event.nativeEvent.isComposing) {
      event.preventDefault();
      if (!streaming && !disabled && value.trim() !== '') onSend(value);
    }
  }

  return (
    <form className="composer" onSubmit={submit}>
      <label htmlFor="composer-input" className="visually-hidden">
        Message
      </label>
      <textarea
        ref={input}
        id="composer-input"
        rows={1}
        value={value}
        placeholder={disabledReason ?? 'Message parley…'}
        onChange={(event) => onChange(event.target.value)}
        onKeyDown={onKeyDown}
        aria-describedby="composer-help"
      />
      <span id="composer-help" className="visually-hidden">
        Enter sends the message, Shift+Enter starts a new line, Escape stops a reply being written.
      </span>
      {streaming ? (
        <button type="submit" className="stop-button" disabled={stopping}>
          {stopping ? 'Stopping…' : 'Stop'}
        </button>
      ) : (
        <button type="submit" className="primary send-button" disabled={disabled || value.trim() === ''}>
          Send
        </button>
      )}
    </form>
  );
}
