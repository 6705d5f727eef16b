import { ApiTokenRequest, FleetwaveError, parseWith } from '@fleetwave/shared';
import type { FastifyInstance } from 'fastify';
import type { ApiDeps, Guard } from './app.js';

export function adminRoutes(app: FastifyInstance, deps: ApiDeps, guard: Guard): void {
  const { auth, now } = deps;
  const store = deps.db.fleet;

  app.get('/api/audit', { preHandler: guard('admin', 'audit.read') }, async (req) => {
    const limit = Math.min(10_000, Math.max(1, Number((req.query as { limit?: string }).limit ?? 100) || 100));
    return { entries: await store.audit(limit) };
  });

  /** The controller replicas on this database, which one leads (its lease and fencing token), and each one's lag. */
  app.get('/api/cluster', { preHandler: guard('viewer', 'cluster.status') }, async () => {
    const cluster = deps.db.cluster;
    const lease = await cluster.lease();
    const replicas = await cluster.replicas(60_000);
    // a lease that ran out (its holder died; no one took over yet) leads no one: the database's clock says so
    const newest = Math.max(0, ...replicas.map((r) => r.seenAt));
    const live = lease && lease.expiresAt >= newest ? lease : undefined;
    return {
      replica: deps.replicaId ?? null,
      // this replica's writes as leader that the fence refused (a former leader's, after it lost the lease)
      refusedWrites: deps.leadership?.()?.refused ?? null,
      leader: live ? { replica: live.holder, token: live.token, since: live.since, expiresAt: live.expiresAt } : null,
      replicas: replicas.map((r) => ({ ...r, leading: live?.holder === r.id })),
    };
  });

  app.get('/api/tokens', { preHandler: guard('admin', 'token.list') }, async () => ({
    tokens: (await store.listApiTokens()).map(({ hash: _h, ...t }) => t),
  }));

  app.post('/api/tokens', { preHandler: guard('admin', 'token.create') }, async (req, reply) => {
    const body = parseWith(ApiTokenRequest, req.body, 'token');
    const { token, record } = await auth.createApiToken(body.name, body.role);
    await auth.audit(req.caller!.actor, 'token.create', record.id, 'ok', `${body.name} as ${body.role}`);
    reply.status(201);
    const { hash: _h, ...shown } = record;
    return { token, record: shown };
  });

  app.post('/api/tokens/:id/revoke', { preHandler: guard('admin', 'token.revoke') }, async (req) => {
    const id = String((req.params as { id: string }).id);
    if (!(await store.getApiToken(id))) throw new FleetwaveError('E_NOT_FOUND', `no token ${id}`);
    await store.revokeApiToken(id, now());
    await auth.audit(req.caller!.actor, 'token.revoke', id, 'ok');
    return { revoked: id };
  });
}
