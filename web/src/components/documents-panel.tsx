/**
 * The user's document library: upload files (picker or drag and drop) with a progress bar, see each file's
 * outcome, list the documents, open one, delete one after a confirmation. Replies can then draw on them
 * and cite them.
 */

import { type DragEvent, useCallback, useEffect, useId, useRef, useState } from 'react';
import { ApiError, api, type DocumentInfo, type UploadResult } from '../api.ts';
import type { FailureHandlers } from './chat-screen.tsx';
import { SourceDialog, type SourceRequest } from './source-dialog.tsx';

export interface DocumentsPanelProps {
  failures: FailureHandlers;
  /** Changes after a reconnection: the list is loaded again. */
  reloadToken: number;
}

/** The file types the server reads. */
const ACCEPT = '.txt,.md,.markdown,.html,.htm,.pdf,.docx,text/plain,text/markdown,text/html,application/pdf';

type Upload =
  | { phase: 'sending'; names: string[]; fraction: number }
  | { phase: 'processing'; names: string[] }
  | { phase: 'done'; results: UploadResult[] }
  | { phase: 'failed'; message: string };

const STATUS_WORDS: Record<UploadResult['status'], string> = {
  added: 'Added',
  updated: 'Updated',
  unchanged: 'Already in your library, unchanged',
  failed: 'Not added',
};

/** The server's messages start with the file name, which the line already shows. */
function withoutName(message: string, filename: string | undefined): string {
  return filename !== undefined && message.startsWith(`${filename}: `)
    ? message.slice(filename.length + 2)
    : message;
}

function size(bytes: number | undefined): string {
  if (bytes === undefined) return '';
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
}

/** The documents panel. */
export function DocumentsPanel({ failures, reloadToken }: DocumentsPanelProps) {
  const [documents, setDocuments] = useState<DocumentInfo[] | undefined>();
  const [listError, setListError] = useState<string | undefined>();
  const [upload, setUpload] = useState<Upload | undefined>();
  const [dragging, setDragging] = useState(false);
  const [confirming, setConfirming] = useState<string | undefined>();
  const [viewing, setViewing] = useState<SourceRequest | undefined>();
  const input = useRef<HTMLInputElement>(null);
  const abort = useRef<AbortController | undefined>(undefined);
  const failuresRef = useRef(failures);
  failuresRef.current = failures;
  const progressId = useId();

  const load = useCallback(async () => {
    try {
      setDocuments(await api.listDocuments());
      setListError(undefined);
    } catch (error) {
      if (error instanceof ApiError && error.status === 404) {
        setListError('This server has no document library (the rag module is not enabled).');
      } else if (!failuresRef.current.handled(error)) {
        setListError(error instanceof Error ? error.message : String(error));
      }
    }
  }, []);

  // biome-ignore lint/correctness/useExhaustiveDependencies: reloadToken is the trigger
  useEffect(() => {
    void load();
  }, [load, reloadToken]);

  useEffect(() => () => abort.current?.abort(), []);

  async function send(files: File[]) {
    if (files.length === 0 || upload?.phase === 'sending' || upload?.phase === 'processing') return;
    const names = files.map((file) => file.name);
    const controller = new AbortController();
    abort.current = controller;
    setUpload({ phase: 'sending', names, fraction: 0 });
    try {
      const { documents: results } = await api.uploadDocuments(
        files,
        (fraction) =>
          setUpload(fraction >= 1 ? { phase: 'processing', names } : { phase: 'sending', names, fraction }),
        controller.signal,
      );
      setUpload({ phase: 'done', results });
      void load();
    } catch (error) {
      if (error instanceof DOMException && error.name === 'AbortError') {
        setUpload(undefined);
        return;
      }
      if (failuresRef.current.handled(error)) {
        setUpload({
          phase: 'failed',
          message: 'The connection was lost during the upload. Try again once it is back.',
        });
        return;
      }
      setUpload({ phase: 'failed', message: error instanceof Error ? error.message : String(error) });
    } finally {
      abort.current = undefined;
      if (input.current) input.current.value = '';
    }
  }

  async function remove(id: string) {
    setConfirming(undefined);
    try {
      await api.deleteDocument(id);
    } catch (error) {
      if (!(error instanceof ApiError && error.status === 404) && !failuresRef.current.handled(error)) {
        setListError(`The document could not be deleted: ${error instanceof Error ? error.message : error}`);
        return;
      }
    }
    setDocuments((list) => list?.filter((document) => document.docId !== id));
  }

  function onDrop(event: DragEvent<HTMLElement>) {
    event.preventDefault();
    setDragging(false);
    void send([...event.dataTransfer.files]);
  }

  const busy = upload?.phase === 'sending' || upload?.phase === 'processing';

  return (
    <section className="documents" aria-labelledby="documents-title">
      <div className="conversation-header">
        <h1 id="documents-title" className="conversation-title">
          Documents
        </h1>
      </div>
      <div className="documents-body">
        <section
          className={`drop-zone${dragging ? ' dragging' : ''}`}
          aria-label="Upload documents"
          onDragOver={(event) => {
            event.preventDefault();
            setDragging(true);
          }}
          onDragLeave={() => setDragging(false)}
          onDrop={onDrop}
        >
          <p>
            Add text, Markdown, HTML, PDF or Word files: replies in your chats can then use them and cite
            them.
          </p>
          <label className={`button primary upload-button${busy ? ' disabled' : ''}`}>
            Upload files
            <input
              ref={input}
              type="file"
              multiple
              accept={ACCEPT}
              disabled={busy}
              className="visually-hidden"
              onChange={(event) => void send([...(event.target.files ?? [])])}
            />
          </label>
          <span className="muted"> or drop them here</span>
          {upload?.phase === 'sending' || upload?.phase === 'processing' ? (
            <div className="upload-progress">
              <label htmlFor={progressId}>
                {upload.phase === 'sending'
                  ? `Uploading ${upload.names.join(', ')}… ${Math.round(upload.fraction * 100)} %`
                  : `Reading and indexing ${upload.names.join(', ')}…`}
              </label>
              <progress
                id={progressId}
                max={1}
                {...(upload.phase === 'sending' ? { value: upload.fraction } : {})}
              />
              {upload.phase === 'sending' ? (
                <button type="button" className="ghost" onClick={() => abort.current?.abort()}>
                  Cancel
                </button>
              ) : null}
            </div>
          ) : null}
          {upload?.phase === 'done' ? (
            <div role="status">
              <ul className="upload-results" aria-label="Upload results">
                {upload.results.map((result) => (
                  <li key={`${result.filename}-${result.docId}`} className={`upload-${result.status}`}>
                    <strong>{result.filename ?? result.title ?? 'file'}</strong>:{' '}
                    {STATUS_WORDS[result.status]}
                    {result.status === 'failed' && result.error
                      ? ` — ${withoutName(result.error.message, result.filename)}`
                      : ''}
                    {result.chunks !== undefined && result.status !== 'failed'
                      ? ` (${result.chunks} passages)`
                      : ''}
                  </li>
                ))}
              </ul>
            </div>
          ) : null}
          {upload?.phase === 'failed' ? (
            <p className="form-error" role="alert">
              The upload failed: {upload.message}
            </p>
          ) : null}
        </section>

        {listError ? (
          <p className="form-error" role="alert">
            {listError}
          </p>
        ) : null}
        {documents === undefined && !listError ? <p className="muted">Loading documents…</p> : null}
        {documents !== undefined && documents.length === 0 ? (
          <p className="muted">No documents yet.</p>
        ) : null}
        {documents !== undefined && documents.length > 0 ? (
          <ul className="document-list" aria-label="Your documents">
            {documents.map((document) => (
              <li key={document.docId} className="document-item">
                <div className="document-text">
                  <span className="document-title">{document.title}</span>
                  <span className="muted document-meta">
                    {[
                      document.filename,
                      document.kind.toUpperCase(),
                      size(document.bytes),
                      new Date(document.updatedAt).toLocaleString(),
                    ]
                      .filter(Boolean)
                      .join(' · ')}
                  </span>
                </div>
                {confirming === document.docId ? (
                  <fieldset className="confirm-delete">
                    <legend>Delete “{document.title}”?</legend>
                    <button type="button" className="danger" onClick={() => void remove(document.docId)}>
                      Delete
                    </button>
                    <button
                      type="button"
                      className="ghost"
                      // biome-ignore lint/a11y/noAutofocus: focus moves to the question just asked
                      autoFocus
                      onClick={() => setConfirming(undefined)}
                    >
                      Cancel
                    </button>
                  </fieldset>
                ) : (
                  <span className="document-actions">
                    <button
                      type="button"
                      className="ghost"
                      aria-label={`Open “${document.title}”`}
                      onClick={() =>
                        setViewing({ kind: 'document', docId: document.docId, title: document.title })
                      }
                    >
                      Open
                    </button>
                    <button
                      type="button"
                      className="ghost"
                      aria-label={`Delete “${document.title}”`}
                      onClick={() => setConfirming(document.docId)}
                    >
                      Delete
                    </button>
                  </span>
                )}
              </li>
            ))}
          </ul>
        ) : null}
      </div>
      {viewing ? <SourceDialog source={viewing} onClose={() => setViewing(undefined)} /> : null}
    </section>
  );
}
