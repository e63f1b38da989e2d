/** The events outbox: rows written with the change, claimed and marked by the relay. */
import { sql, type Kysely } from 'kysely';
import type { EventEnvelope } from '../domain/entities.ts';
import type { Store, StoredEvent, Repos } from '../engine/ports.ts';
import type { Database } from './db.ts';
import { jsonb } from './json.ts';

export function outboxRepos(db: Kysely<Database>): Pick<Repos, 'insertEvents'> {
  return {
    async insertEvents(events) {
      if (events.length === 0) return;
      await db.insertInto('event_outbox')
        .values(events.map((e) => ({ event_type: e.event_type, envelope: jsonb(e), published_at: null })))
        .execute();
    },
  };
}

/**
 * Claims the oldest unpublished events with SKIP LOCKED (so relays in several API replicas share
 * the work without double delivery), delivers them, and marks them published in the same
 * transaction. A delivery failure rolls back and the events stay for the next pass.
 */
export function relayEvents(db: Kysely<Database>): Store['relayEvents'] {
  return async (limit, deliver) =>
    db.transaction().execute(async (trx) => {
      const rows = await trx.selectFrom('event_outbox').select([sql<string>`id::text`.as('id'), 'envelope'])
        .where('published_at', 'is', null).orderBy('id').limit(limit).forUpdate().skipLocked().execute();
      if (rows.length === 0) return 0;
      const events: StoredEvent[] = rows.map((r) => ({ id: r.id, envelope: r.envelope as EventEnvelope }));
      await deliver(events);
      await trx.updateTable('event_outbox').set({ published_at: new Date() })
        .where('id', '=', sql<string>`ANY(${rows.map((r) => r.id)}::bigint[])`).execute();
      return rows.length;
    });
}
