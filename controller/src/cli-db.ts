import { FleetwaveError } from '@fleetwave/shared';
import { copyDatabase } from './store/copy.js';
import { openDatabase } from './store/open-database.js';

/** `fleetwave db migrate` and `fleetwave db copy`. */
export async function runDbCommand(
  sub: string | undefined,
  v: { database?: string | undefined; from?: string | undefined; to?: string | undefined; json?: boolean | undefined },
  dataDir: string,
): Promise<number> {
  if (sub === 'migrate') {
    const db = await openDatabase({ url: v.database ?? process.env.FLEETWAVE_DATABASE_URL, dataDir });
    process.stdout.write(`${db.where}: schema up to date (${db.kind})\n`);
    await db.close();
    return 0;
  }
  if (sub === 'copy') {
    if (!v.from || !v.to) {
      throw new FleetwaveError(
        'E_CONFIG_INVALID',
        'db copy needs --from <url> and --to <url> (postgres://… or sqlite:<file>), e.g. --from sqlite:.fleetwave/controller/fleet.db --to postgres://fleetwave@db:5432/fleetwave',
      );
    }
    const from = await openDatabase({ url: v.from, dataDir });
    try {
      const to = await openDatabase({ url: v.to, dataDir });
      try {
        let last = '';
        const report = await copyDatabase(from, to, (table, rows) => {
          if (v.json) return;
          process.stderr.write(`${table === last ? '\r' : last ? '\n' : ''}copying ${table}: ${rows} rows`);
          last = table;
        });
        if (!v.json && last) process.stderr.write('\n');
        if (v.json) process.stdout.write(`${JSON.stringify({ from: from.where, to: to.where, ...report })}\n`);
        else {
          for (const t of report.tables)
            process.stdout.write(
              `${t.table.padEnd(18)} ${String(t.rows).padStart(10)} rows  checksum ${t.checksum}  ok\n`,
            );
          process.stdout.write(
            `copied ${from.where} to ${to.where}; verified. Start the controller with --database ${to.where}\n`,
          );
        }
      } finally {
        await to.close();
      }
    } finally {
      await from.close();
    }
    return 0;
  }
  throw new FleetwaveError(
    'E_CONFIG_INVALID',
    `unknown db command "${sub ?? ''}": db migrate | db copy --from <url> --to <url>`,
  );
}
