/**
 * A route's bus request to an optional module (memory, multi_agent…), answered by whichever node runs it.
 * When no node does — the module is off — the bus's 503 CHAT_ERR_BUS_NO_HANDLER would read as an outage:
 * the route answers 404 with `whenOff`, which says how to turn the module on.
 */

import type { Bus, RequestOptions } from '../core/bus-types.ts';
import { isPlatformError, NotFoundError } from '../core/errors.ts';

export async function requestOptionalModule<Reply>(
  bus: Bus,
  type: string,
  data: Record<string, unknown>,
  options: RequestOptions & { whenOff: string },
): Promise<Reply> {
  const { whenOff, ...requestOptions } = options;
  try {
    return await bus.request<Reply>(type, data, requestOptions);
  } catch (error) {
    if (isPlatformError(error, 'CHAT_ERR_BUS_NO_HANDLER')) throw new NotFoundError(whenOff);
    throw error;
  }
}
