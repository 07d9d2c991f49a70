/**
 * Test support (only *.test.ts import it): small but real PDF and DOCX files built from their specs at test
 * time, so the parser tests read genuine files without binary fixtures in the repository.
 */
import { crc32, deflateRawSync, deflateSync } from 'node:zlib';

/** A PDF string literal: backslash and parentheses escaped (PDF 32000-1 §7.3.4.2). */
function pdfString(text: string): string {
  return `(${text.replace(/[\\()]/g, (character) => `\\${character}`)})`;
}

/**
 * A PDF 1.4 file with one page per entry of `pages` (each line of a page is drawn as one text line in
 * Helvetica) and an Info dictionary carrying `title`. Cross-reference offsets are computed, so readers that
 * check the xref table accept it. ASCII text only (the standard font's encoding).
 */
export function makePdf(
  pages: string[][],
  title?: string,
  options: {
    /** Deflate the page content streams (FlateDecode), `passes` times over (default 1). */
    deflate?: { passes?: number };
    /** Bytes of blank lines added to each page's content (before deflating): a small file, a large stream. */
    padding?: number;
  } = {},
): Uint8Array {
  const objects: string[] = [];
  const pageCount = pages.length;
  const fontId = 3;
  // 1 catalog, 2 page tree, 3 font, then per page: page object and its content stream; last the Info.
  objects[1] = '<< /Type /Catalog /Pages 2 0 R >>';
  const kids = pages.map((_, index) => `${4 + index * 2} 0 R`).join(' ');
  objects[2] = `<< /Type /Pages /Kids [${kids}] /Count ${pageCount} >>`;
  objects[fontId] = '<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>';
  pages.forEach((lines, index) => {
    const pageId = 4 + index * 2;
    const drawing = lines.map((line) => `${pdfString(line)} Tj 0 -16 Td`).join('\n');
    const stream = `BT\n/F1 12 Tf\n72 720 Td\n${drawing}\nET${'\n'.repeat(options.padding ?? 0)}`;
    objects[pageId] =
      `<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 ${fontId} 0 R >> >> /Contents ${pageId + 1} 0 R >>`;
    if (options.deflate === undefined) {
      objects[pageId + 1] = `<< /Length ${stream.length} >>\nstream\n${stream}\nendstream`;
    } else {
      const passes = options.deflate.passes ?? 1;
      let data: Buffer = Buffer.from(stream, 'latin1');
      for (let pass = 0; pass < passes; pass++) data = deflateSync(data);
      const filters = Array.from({ length: passes }, () => '/FlateDecode').join(' ');
      // Latin-1 keeps the deflated bytes one character each, as the file is encoded below.
      objects[pageId + 1] =
        `<< /Length ${data.length} /Filter [${filters}] >>\nstream\n${data.toString('latin1')}\nendstream`;
    }
  });
  const infoId = 4 + pageCount * 2;
  objects[infoId] = title === undefined ? '<< >>' : `<< /Title ${pdfString(title)} >>`;

  let body = '%PDF-1.4\n';
  const offsets: number[] = [];
  for (let id = 1; id < objects.length; id++) {
    offsets[id] = body.length;
    body += `${id} 0 obj\n${objects[id]}\nendobj\n`;
  }
  const xrefOffset = body.length;
  body += `xref\n0 ${objects.length}\n0000000000 65535 f \n`;
  for (let id = 1; id < objects.length; id++) body += `${String(offsets[id]).padStart(10, '0')} 00000 n \n`;
  body += `trailer\n<< /Size ${objects.length} /Root 1 0 R /Info ${infoId} 0 R >>\nstartxref\n${xrefOffset}\n%%EOF\n`;
  // Latin-1: one byte per character, so the offsets above are byte offsets even with binary streams.
  return new Uint8Array(Buffer.from(body, 'latin1'));
}

/** How `makeZip` writes its entries. */
export interface ZipOptions {
  /** Deflate every entry (method 8) instead of storing it (method 0). */
  deflate?: boolean;
  /** A false uncompressed size to declare for some entries (as a crafted zip bomb would). */
  declaredSizes?: Record<string, number>;
}

/** A ZIP archive of the given files, stored without compression (every ZIP reader accepts method 0). */
export function makeZip(files: Record<string, string | Uint8Array>, options: ZipOptions = {}): Uint8Array {
  const local: Buffer[] = [];
  const central: Buffer[] = [];
  let offset = 0;
  for (const [name, content] of Object.entries(files)) {
    const nameBytes = Buffer.from(name, 'utf8');
    const raw = typeof content === 'string' ? Buffer.from(content, 'utf8') : Buffer.from(content);
    const checksum = crc32(raw);
    const data = options.deflate === true ? deflateRawSync(raw) : raw;
    const method = options.deflate === true ? 8 : 0;
    const declared = options.declaredSizes?.[name] ?? raw.length;
    const header = Buffer.alloc(30);
    header.writeUInt32LE(0x04034b50, 0);
    header.writeUInt16LE(20, 4); // version needed
    header.writeUInt16LE(0x0800, 6); // UTF-8 names
    header.writeUInt16LE(method, 8);
    header.writeUInt32LE(0, 10); // time and date
    header.writeUInt32LE(checksum, 14);
    header.writeUInt32LE(data.length, 18);
    header.writeUInt32LE(declared, 22);
    header.writeUInt16LE(nameBytes.length, 26);
    header.writeUInt16LE(0, 28);
    local.push(header, nameBytes, data);
    const entry = Buffer.alloc(46);
    entry.writeUInt32LE(0x02014b50, 0);
    entry.writeUInt16LE(20, 4);
    entry.writeUInt16LE(20, 6);
    entry.writeUInt16LE(0x0800, 8);
    entry.writeUInt16LE(method, 10);
    entry.writeUInt32LE(0, 12);
    entry.writeUInt32LE(checksum, 16);
    entry.writeUInt32LE(data.length, 20);
    entry.writeUInt32LE(declared, 24);
    entry.writeUInt16LE(nameBytes.length, 28);
    entry.writeUInt32LE(offset, 42);
    central.push(entry, nameBytes);
    offset += header.length + nameBytes.length + data.length;
  }
  const centralSize = central.reduce((sum, part) => sum + part.length, 0);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(Object.keys(files).length, 8);
  end.writeUInt16LE(Object.keys(files).length, 10);
  end.writeUInt32LE(centralSize, 12);
  end.writeUInt32LE(offset, 16);
  return new Uint8Array(Buffer.concat([...local, ...central, end]));
}

function xmlText(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

/** One paragraph of a DOCX: plain, or in one of Word's built-in heading styles. */
export interface DocxParagraph {
  text: string;
  style?: 'Heading1' | 'Heading2' | 'Title';
}

/**
 * A minimal WordprocessingML document (ECMA-376): content types, package relationships, the main part,
 * and a styles part defining the heading styles so converters map them to headings. `title` goes into the
 * core properties (docProps/core.xml).
 */
export function makeDocx(
  paragraphs: DocxParagraph[],
  title?: string,
  extra: { files?: Record<string, string | Uint8Array>; zip?: ZipOptions } = {},
): Uint8Array {
  const ns = 'http://schemas.openxmlformats.org/wordprocessingml/2006/main';
  const body = paragraphs
    .map(({ text, style }) => {
      const properties = style === undefined ? '' : `<w:pPr><w:pStyle w:val="${style}"/></w:pPr>`;
      return `<w:p>${properties}<w:r><w:t xml:space="preserve">${xmlText(text)}</w:t></w:r></w:p>`;
    })
    .join('');
  const style = (id: string, name: string) =>
    `<w:style w:type="paragraph" w:styleId="${id}"><w:name w:val="${name}"/></w:style>`;
  return makeZip(
    {
      '[Content_Types].xml':
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>' +
        '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">' +
        '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>' +
        '<Default Extension="xml" ContentType="application/xml"/>' +
        '<Override PartName="/word/document.xml" ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/>' +
        '<Override PartName="/word/styles.xml" ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.styles+xml"/>' +
        '<Override PartName="/docProps/core.xml" ContentType="application/vnd.openxmlformats-package.core-properties+xml"/>' +
        '</Types>',
      '_rels/.rels':
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>' +
        '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">' +
        '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="word/document.xml"/>' +
        '<Relationship Id="rId2" Type="http://schemas.openxmlformats.org/package/2006/relationships/metadata/core-properties" Target="docProps/core.xml"/>' +
        '</Relationships>',
      'word/_rels/document.xml.rels':
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>' +
        '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">' +
        '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/styles" Target="styles.xml"/>' +
        '</Relationships>',
      'word/styles.xml': `<?xml version="1.0" encoding="UTF-8" standalone="yes"?><w:styles xmlns:w="${ns}">${style('Title', 'Title')}${style('Heading1', 'heading 1')}${style('Heading2', 'heading 2')}</w:styles>`,
      'word/document.xml': `<?xml version="1.0" encoding="UTF-8" standalone="yes"?><w:document xmlns:w="${ns}"><w:body>${body}</w:body></w:document>`,
      'docProps/core.xml':
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>' +
        '<cp:coreProperties xmlns:cp="http://schemas.openxmlformats.org/package/2006/metadata/core-properties" xmlns:dc="http://purl.org/dc/elements/1.1/">' +
        `<dc:title>${xmlText(title ?? '')}</dc:title></cp:coreProperties>`,
      ...extra.files,
    },
    extra.zip,
  );
}
