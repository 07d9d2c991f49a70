import { describe, expect, it } from 'vitest';
import { isPlatformError } from '../../core/errors.ts';
import { chunkDocument } from './chunker.ts';
import { detectKind, parseDocument } from './parsers.ts';
import { makeDocx, makePdf } from './test-fixtures.ts';

const encoder = new TextEncoder();

async function parseError(promise: Promise<unknown>): Promise<{ code: string; message: string }> {
  try {
    await promise;
  } catch (error) {
    if (isPlatformError(error)) return { code: error.code, message: error.message };
    throw error;
  }
  throw new Error('expected the parse to fail');
}

describe('parseDocument', () => {
  it('keeps plain text as it is, with line endings normalised', async () => {
    const parsed = await parseDocument({
      bytes: encoder.encode('\uFEFFfirst line\r\nsecond\rthird'),
      filename: 'a.txt',
    });
    expect(parsed).toEqual({
      kind: 'text',
      mediaType: 'text/plain',
      text: 'first line\nsecond\nthird',
      format: 'text',
    });
  });

  it('keeps Markdown as it is and takes its first heading as the title', async () => {
    const markdown = 'intro\n\n# Wing design\n\nLift comes from pressure.\n';
    const parsed = await parseDocument({ text: markdown, filename: 'notes.md' });
    expect(parsed.kind).toBe('markdown');
    expect(parsed.text).toBe(markdown);
    expect(parsed.title).toBe('Wing design');
    // Chunks follow the headings of the stored text.
    expect(chunkDocument({ docId: 'd', text: parsed.text }).map((chunk) => chunk.heading)).toEqual([
      undefined,
      'Wing design',
    ]);
  });

  it('turns HTML into Markdown: headings kept, scripts and styles dropped, <title> as the title', async () => {
    const html =
      '<!doctype html><html><head><title>Flight manual</title><style>p { color: red }</style></head>' +
      '<body><h1>Wings</h1><p>Lift is made by the wing_root and 1. speed.</p><script>alert("x")</script>' +
      '<h2>Flaps</h2><ul><li>extend</li><li>retract</li></ul></body></html>';
    const parsed = await parseDocument({
      bytes: encoder.encode(html),
      mediaType: 'text/html; charset=utf-8',
    });
    expect(parsed.kind).toBe('html');
    expect(parsed.format).toBe('markdown');
    expect(parsed.title).toBe('Flight manual');
    expect(parsed.text).toContain('# Wings');
    expect(parsed.text).toContain('## Flaps');
    // No Markdown escaping of ordinary text.
    expect(parsed.text).toContain('Lift is made by the wing_root and 1. speed.');
    expect(parsed.text).toMatch(/- +extend/);
    expect(parsed.text).not.toContain('alert');
    expect(parsed.text).not.toContain('color');
    expect(parsed.text).not.toContain('Flight manual');
  });

  it('extracts the text of every PDF page and the Info title', async () => {
    const pdf = makePdf(
      [['Aerofoil (section) theory', 'Thin sections stall early.'], ['Page two: boundary layers.']],
      'Aero Notes',
    );
    const parsed = await parseDocument({ bytes: pdf, filename: 'aero.PDF' });
    expect(parsed.kind).toBe('pdf');
    expect(parsed.title).toBe('Aero Notes');
    expect(parsed.text).toBe(
      'Aerofoil (section) theory\nThin sections stall early.\n\nPage two: boundary layers.',
    );
  });

  it('recognises a PDF by its bytes when the upload says only application/octet-stream', async () => {
    const pdf = makePdf([['Hello from a PDF']]);
    expect(detectKind({ bytes: pdf, mediaType: 'application/octet-stream' })).toBe('pdf');
    const parsed = await parseDocument({ bytes: pdf, mediaType: 'application/octet-stream' });
    expect(parsed.text).toBe('Hello from a PDF');
  });

  it('turns DOCX into Markdown with its headings', async () => {
    const docx = makeDocx([
      { text: 'Wings', style: 'Heading1' },
      { text: 'Lift grows with <angle> & speed.' },
      { text: 'Flaps', style: 'Heading2' },
      { text: 'Flaps add lift at low speed.' },
    ]);
    const parsed = await parseDocument({ bytes: docx, filename: 'manual.docx' });
    expect(parsed.kind).toBe('docx');
    expect(parsed.format).toBe('markdown');
    expect(parsed.title).toBe('Wings');
    expect(parsed.text).toBe(
      '# Wings\n\nLift grows with <angle> & speed.\n\n## Flaps\n\nFlaps add lift at low speed.',
    );
  });

  it('gives a clear per-file error for a corrupt PDF, a corrupt DOCX, non-UTF-8 text and unknown types', async () => {
    const corruptPdf = await parseError(
      parseDocument({ bytes: encoder.encode('%PDF-1.4\nthis is not a pdf body'), filename: 'broken.pdf' }),
    );
    expect(corruptPdf.code).toBe('CHAT_ERR_DOCUMENT_UNREADABLE');
    expect(corruptPdf.message).toMatch(/^broken\.pdf: not a readable PDF file/);

    const corruptDocx = await parseError(
      parseDocument({ bytes: encoder.encode('PK nope'), filename: 'x.docx' }),
    );
    expect(corruptDocx.code).toBe('CHAT_ERR_DOCUMENT_UNREADABLE');
    expect(corruptDocx.message).toMatch(/^x\.docx: not a readable DOCX file/);

    const latin1 = await parseError(
      parseDocument({ bytes: new Uint8Array([0x63, 0x61, 0x66, 0xe9]), filename: 'a.txt' }),
    );
    expect(latin1).toEqual({ code: 'CHAT_ERR_DOCUMENT_UNREADABLE', message: 'a.txt: not UTF-8 text' });

    const image = await parseError(
      parseDocument({ bytes: new Uint8Array([0x89, 0x50]), filename: 'photo.png' }),
    );
    expect(image.code).toBe('CHAT_ERR_DOCUMENT_UNSUPPORTED_TYPE');
    expect(image.message).toContain('photo.png: unsupported file type');
  });

  it('says so when a PDF has no text layer', async () => {
    const empty = await parseError(parseDocument({ bytes: makePdf([[]]), filename: 'scan.pdf' }));
    expect(empty.code).toBe('CHAT_ERR_DOCUMENT_UNREADABLE');
    expect(empty.message).toContain('no text could be extracted');
    expect(empty.message).toContain('OCR');
  });
});

describe('parseDocument: compressed files are bounded (zip bombs)', () => {
  const limits = { maxUncompressedBytes: 1024 * 1024, maxArchiveEntries: 20 };
  const paragraphs = [{ text: 'Wing loading', style: 'Heading1' as const }, { text: 'Keep it low.' }];
  const zeros = new Uint8Array(2 * 1024 * 1024);

  it('reads a deflated DOCX and a deflated PDF within the limits', async () => {
    const docx = await parseDocument({
      bytes: makeDocx(paragraphs, undefined, { zip: { deflate: true } }),
      filename: 'small.docx',
      limits,
    });
    expect(docx.text).toContain('# Wing loading');
    const pdf = await parseDocument({
      bytes: makePdf([['Stall speed 48 knots']], undefined, { deflate: {}, padding: 1000 }),
      filename: 'small.pdf',
      limits,
    });
    expect(pdf.text).toContain('Stall speed 48 knots');
  });

  it('refuses a DOCX whose entries inflate past max_uncompressed_bytes, whatever their headers say', async () => {
    for (const declaredSizes of [undefined, { 'word/media/zeros.bin': 10 }]) {
      const bomb = makeDocx(paragraphs, undefined, {
        files: { 'word/media/zeros.bin': zeros },
        zip: { deflate: true, ...(declaredSizes === undefined ? {} : { declaredSizes }) },
      });
      // A small upload: 2 MiB of zeros deflate to about 2 KiB.
      expect(bomb.length).toBeLessThan(10_000);
      const error = await parseError(parseDocument({ bytes: bomb, filename: 'bomb.docx', limits }));
      expect(error.code).toBe('CHAT_ERR_PAYLOAD_TOO_LARGE');
      expect(error.message).toBe('bomb.docx: decompresses to more than 1 MiB (rag.max_uncompressed_bytes)');
    }
  });

  it('refuses a DOCX with more entries than max_archive_entries', async () => {
    const files = Object.fromEntries(
      Array.from({ length: 30 }, (_, index) => [`word/media/${index}.txt`, 'x']),
    );
    const error = await parseError(
      parseDocument({ bytes: makeDocx(paragraphs, undefined, { files }), filename: 'many.docx', limits }),
    );
    expect(error.code).toBe('CHAT_ERR_PAYLOAD_TOO_LARGE');
    expect(error.message).toMatch(
      /^many\.docx: has \d+ or more archive entries, more than 20 \(rag\.max_archive_entries\)$/,
    );
  });

  it('refuses a PDF whose deflated streams inflate past max_uncompressed_bytes, deflated once or twice', async () => {
    for (const passes of [1, 2]) {
      const bomb = makePdf([['Stall speed 48 knots']], undefined, {
        deflate: { passes },
        padding: 2 * 1024 * 1024,
      });
      expect(bomb.length).toBeLessThan(20_000);
      const error = await parseError(parseDocument({ bytes: bomb, filename: 'bomb.pdf', limits }));
      expect(error.code).toBe('CHAT_ERR_PAYLOAD_TOO_LARGE');
      expect(error.message).toBe('bomb.pdf: decompresses to more than 1 MiB (rag.max_uncompressed_bytes)');
    }
  });
});
