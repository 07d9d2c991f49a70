import { describe, expect, it } from 'vitest';
import type { AuditLog, AuditRecord } from '../security/audit-log.ts';
import { createFailedAuthAudit } from './failed-auth-audit.ts';

/** An audit log that keeps what it is told (the real one is tested in test/integration/audit.test.ts). */
function recordingAudit(): { audit: AuditLog; records: AuditRecord[] } {
  const records: AuditRecord[] = [];
  const audit = {
    record: async (record: AuditRecord) => {
      records.push(record);
      return { ...record, chain: 'c', seq: records.length - 1, time: '', previous: '', hash: '' };
    },
  } as unknown as AuditLog;
  return { audit, records };
}

const attempt = (ip: string) => ({ ip, route: 'GET /v1/sessions', reason: 'the API key is not valid' });

describe('failed authentication audit', () => {
  it('writes each address once a window, then its count; beyond 100 addresses, one count for the rest', async () => {
    const { audit, records } = recordingAudit();
    const failed = createFailedAuthAudit(audit, (error) => {
      throw error;
    });
    for (let index = 0; index < 101; index++) failed.failed(attempt(`10.0.0.${index}`));
    failed.failed(attempt('10.0.0.1'));
    failed.failed(attempt('10.0.0.1'));
    failed.failed(attempt('10.0.0.200'));
    await Promise.resolve();
    expect(records).toHaveLength(100);
    expect(records.every((record) => record.details?.count === undefined)).toBe(true);

    await failed.flush();
    expect(records.slice(100)).toEqual([
      expect.objectContaining({
        target: expect.objectContaining({ ip: '10.0.0.1' }),
        details: expect.objectContaining({ count: 2 }),
      }),
      expect.objectContaining({
        target: expect.objectContaining({ ip: 'many' }),
        details: expect.objectContaining({ count: 2 }),
      }),
    ]);
  });
});
