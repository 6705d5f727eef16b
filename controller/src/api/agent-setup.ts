import type { TrustedKey } from '@fleetwave/shared';

/** What a new device's agent needs to know of the controller: enough to write a complete agent config. */
export interface AgentSetup {
  id: string;
  hardware: string | null;
  uplinkUrl: string;
  root: string;
  jobsRoot: string;
  /** The release keys the controller trusts, as PEM (public keys). */
  trustedKeys: { keyId: string; pem: string }[];
}

export function agentSetup(
  id: string,
  hardware: string | null,
  o: { uplinkUrl: string; root: string; jobsRoot: string; trusted: readonly TrustedKey[] },
): AgentSetup {
  return {
    id,
    hardware,
    uplinkUrl: o.uplinkUrl,
    root: o.root,
    jobsRoot: o.jobsRoot,
    trustedKeys: o.trusted.map((k) => ({
      keyId: k.keyId,
      pem: k.key.export({ type: 'spki', format: 'pem' }).toString(),
    })),
  };
}

/** YAML scalars a config line can carry unquoted; anything else is JSON-quoted (valid YAML). */
const plain = (s: string) => (/^[A-Za-z0-9_./:-]+$/.test(s) && !/^[0-9]/.test(s) ? s : JSON.stringify(s));

/**
 * The agent config `device add` prints: uplink and credentials, the updates block with the controller's jobs root
 * and release keys, and a data dir. Paths are under `agentDir` (the directory `device add --out` fills, copied to
 * the device) and `/var/lib/fleetwave`; an agent started from exactly this text connects and takes rollouts.
 */
export function agentConfigSnippet(
  s: AgentSetup,
  agentDir = '/etc/fleetwave',
  /** `cert`: the agent signs in with `device.crt`/`device.key` (and `ca.pem`) over TLS at `url`, not with a token. */
  credentials: { kind: 'token' } | { kind: 'cert'; url: string } = { kind: 'token' },
): string {
  const dir = agentDir.replace(/\/+$/, '') || '/';
  const tls = credentials.kind === 'cert' && /^(mqtts|tls|wss):/.test(credentials.url);
  const signIn =
    credentials.kind === 'cert'
      ? [
          `  caFile: ${plain(`${dir}/ca.pem`)} # the CA that signed the broker's certificate (the fleet CA, if it did)`,
          `  certFile: ${plain(`${dir}/device.crt`)}`,
          `  keyFile: ${plain(`${dir}/device.key`)} # readable by the agent only`,
        ]
      : [
          `  username: ${plain(s.id)}`,
          `  tokenFile: ${plain(`${dir}/token`)} # the token printed once, readable by the agent only`,
        ];
  const keys = s.trustedKeys.map((k) => plain(`${dir}/trusted-keys/${k.keyId}.pem`));
  const lines = [
    `# agent config for ${s.id}: save as ${dir}/agent.yaml and run fleetwave-agent --config ${dir}/agent.yaml`,
    `device: { id: ${plain(s.id)} }`,
    `dataDir: ${plain(dir === '/etc/fleetwave' ? '/var/lib/fleetwave' : `${dir}/data`)} # outbox, update state, status`,
    'uplink:',
    credentials.kind === 'cert'
      ? `  url: ${plain(credentials.url)}${tls ? '' : " # a certificate needs TLS: the controller's mqtts:// listener"}`
      : `  url: ${plain(s.uplinkUrl)}`,
    `  root: ${plain(s.root)}`,
    ...signIn,
    'updates:',
  ];
  if (keys.length > 0) {
    lines.push(
      '  enabled: true',
      `  jobsRoot: ${plain(s.jobsRoot)}`,
      ...(s.hardware ? [`  hardware: ${plain(s.hardware)}`] : []),
      `  trustedKeys: [${keys.join(', ')}] # the release keys the controller trusts (public)`,
    );
  } else {
    lines.push(
      '  # the controller trusts no release key yet (fleetwave release keygen, then restart it with the key in',
      '  # <data-dir>/trusted-keys/); set enabled: true and trustedKeys then, or run device add again',
      '  enabled: false',
      `  jobsRoot: ${plain(s.jobsRoot)}`,
      ...(s.hardware ? [`  hardware: ${plain(s.hardware)}`] : []),
    );
  }
  return `${lines.join('\n')}\n`;
}
