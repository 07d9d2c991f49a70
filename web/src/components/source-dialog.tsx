/**
 * A document shown in a modal dialog: either the passage a citation points at (highlighted, with the
 * text around it) or a whole document from the library. The text is shown as text, never as HTML. The
 * native <dialog> gives the modal behaviour: focus moves in, Escape closes, the page behind is inert.
 */

import { useEffect, useRef, useState } from 'react';
import { api, type DocumentInfo, type Passage } from '../api.ts';

/** What to show. */
export type SourceRequest =
  | { kind: 'passage'; docId: string; title: string; start: number; end: number }
  | { kind: 'document'; docId: string; title: string };

export interface SourceDialogProps {
  source: SourceRequest;
  onClose(): void;
}

type Loaded = { kind: 'passage'; passage: Passage } | { kind: 'document'; document: DocumentInfo };

/** The dialog. */
export function SourceDialog({ source, onClose }: SourceDialogProps) {
  const dialog = useRef<HTMLDialogElement>(null);
  const mark = useRef<HTMLElement>(null);
  const [loaded, setLoaded] = useState<Loaded | undefined>();
  const [error, setError] = useState<string | undefined>();

  useEffect(() => {
    const element = dialog.current;
    if (element && !element.open) element.showModal();
    return () => element?.close();
  }, []);

  useEffect(() => {
    let cancelled = false;
    const load =
      source.kind === 'passage'
        ? api
            .getPassage(source.docId, source.start, source.end)
            .then((passage): Loaded => ({ kind: 'passage', passage }))
        : api.getDocument(source.docId).then((document): Loaded => ({ kind: 'document', document }));
    load.then(
      (result) => {
        if (!cancelled) setLoaded(result);
      },
      (failure: unknown) => {
        if (!cancelled) {
          setError(
            failure instanceof Error && /404|not found|no document/i.test(`${failure.message}`)
              ? 'This document is no longer in your library.'
              : `The document could not be loaded: ${failure instanceof Error ? failure.message : failure}`,
          );
        }
      },
    );
    return () => {
      cancelled = true;
    };
  }, [source]);

  useEffect(() => {
    if (loaded?.kind === 'passage') mark.current?.scrollIntoView({ block: 'center' });
  }, [loaded]);

  const title =
    loaded?.kind === 'passage'
      ? loaded.passage.title
      : loaded?.kind === 'document'
        ? loaded.document.title
        : source.title;

  return (
    <dialog
      ref={dialog}
      className="source-dialog"
      aria-labelledby="source-title"
      onClose={onClose}
      onCancel={(event) => {
        event.preventDefault();
        onClose();
      }}
    >
      <div className="source-header">
        <h2 id="source-title">{title}</h2>
        <button type="button" className="ghost" onClick={onClose}>
          Close
        </button>
      </div>
      <div className="source-body">
        {error ? (
          <p className="form-error" role="alert">
            {error}
          </p>
        ) : loaded === undefined ? (
          <p className="muted">Loading…</p>
        ) : loaded.kind === 'passage' ? (
          <>
            <p className="muted source-where">
              Characters {loaded.passage.start.toLocaleString()}–{loaded.passage.end.toLocaleString()} of{' '}
              {loaded.passage.characters.toLocaleString()}
              {loaded.passage.filename ? ` · ${loaded.passage.filename}` : ''}
            </p>
            <div className="source-text">
              {loaded.passage.start > loaded.passage.before.length ? '…' : ''}
              {loaded.passage.before}
              <mark ref={mark}>{loaded.passage.text}</mark>
              {loaded.passage.after}
              {loaded.passage.end + loaded.passage.after.length < loaded.passage.characters ? '…' : ''}
            </div>
          </>
        ) : (
          <div className="source-text">{loaded.document.content ?? ''}</div>
        )}
      </div>
    </dialog>
  );
}
