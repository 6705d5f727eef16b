#!/usr/bin/env node
// fleetwave-demo: a controller and N gateways running the agent, on the embedded defaults (npm run demo).
import { parseArgs } from 'node:util';
import { FleetwaveError } from '@fleetwave/shared';
import { runDemo } from './demo.js';

const HELP = `fleetwave-demo: a controller and N gateways running the agent, on the embedded defaults

Usage:
  fleetwave-demo [--gateways N] [--no-story] [--story-delay s]

  --gateways N      gateways to run (default 100), each an agent with sensors, enrolled with the controller
  --no-story        only the fleet: no release rolled out
  --story-delay s   seconds between the story's steps (default: the story's own pace)

The story: a release rolled out in waves while some gateways are offline, then a broken one stopped at the canary
and rolled back. Ctrl-C stops everything cleanly.
`;

async function main(argv: string[]): Promise<number> {
  const { values: v } = parseArgs({
    args: argv,
    options: {
      gateways: { type: 'string' },
      'no-story': { type: 'boolean' },
      'story-delay': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (v.help) {
    process.stdout.write(HELP);
    return 0;
  }
  const gateways = Number(v.gateways ?? 100);
  if (!Number.isInteger(gateways) || gateways < 1 || gateways > 10_000) {
    throw new FleetwaveError(
      'E_CONFIG_INVALID',
      `--gateways must be a whole number from 1 to 10000, got "${v.gateways}"`,
    );
  }
  const delay = v['story-delay'] === undefined ? undefined : Number(v['story-delay']);
  if (delay !== undefined && !(delay >= 0)) {
    throw new FleetwaveError(
      'E_CONFIG_INVALID',
      `--story-delay must be a number of seconds, got "${v['story-delay']}"`,
    );
  }
  await runDemo({ gateways, story: !v['no-story'], ...(delay !== undefined && { storyDelayMs: delay * 1000 }) });
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err) => {
    if (err instanceof FleetwaveError) {
      process.stderr.write(`fleetwave-demo: ${err.code}: ${err.message}\n`);
      process.exit(78);
    }
    if ((err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
      process.stderr.write(`fleetwave-demo: ${(err as Error).message}\n\n${HELP}`);
      process.exit(2);
    }
    process.stderr.write(`fleetwave-demo: ${(err as Error).stack}\n`);
    process.exit(1);
  },
);
