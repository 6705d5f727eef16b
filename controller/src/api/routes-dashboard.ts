import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance } from 'fastify';

/** The dashboard's files (plain HTML, CSS and ES modules: no build step) and uPlot from its package. */
const DASHBOARD = fileURLToPath(new URL('../../dashboard/', import.meta.url));
const UPLOT = dirname(createRequire(import.meta.url).resolve('uplot/dist/uPlot.iife.min.js'));

const FILES: Record<string, [string, string]> = {
  'index.html': [join(DASHBOARD, 'index.html'), 'text/html; charset=utf-8'],
  'app.js': [join(DASHBOARD, 'app.js'), 'text/javascript; charset=utf-8'],
  'views.js': [join(DASHBOARD, 'views.js'), 'text/javascript; charset=utf-8'],
  'style.css': [join(DASHBOARD, 'style.css'), 'text/css; charset=utf-8'],
  'uPlot.iife.min.js': [join(UPLOT, 'uPlot.iife.min.js'), 'text/javascript; charset=utf-8'],
  'uPlot.min.css': [join(UPLOT, 'uPlot.min.css'), 'text/css; charset=utf-8'],
};

/**
 * The operator dashboard at `/ui/`. It is a static page that signs in with an API token and then uses the same
 * authenticated API as the CLI (JSON and server-sent events); the server adds nothing of its own.
 */
export function dashboardRoutes(app: FastifyInstance): void {
  app.get('/', async (_req, reply) => reply.redirect('/ui/'));
  app.get('/ui', async (_req, reply) => reply.redirect('/ui/'));
  app.get('/ui/*', async (req, reply) => {
    const name = (req.params as { '*': string })['*'] || 'index.html';
    const f = FILES[name];
    if (!f || !existsSync(f[0]))
      return reply.status(404).send({ error: { code: 'E_NOT_FOUND', message: `no ${name}` } });
    reply
      .header('content-type', f[1])
      .header('cache-control', 'no-cache')
      .header('content-security-policy', "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:")
      .header('x-content-type-options', 'nosniff');
    return readFileSync(f[0]);
  });
}
