import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';

export interface RecordedRequest {
  method: string;
  path: string;
  query: Record<string, string>;
  body: unknown;
  signed: boolean;
}

/**
 * A local stand-in for the AWS IoT control plane (REST-JSON, as @aws-sdk/client-iot speaks it) for the operations
 * provisioning uses. It keeps state, answers with the documented shapes and errors (x-amzn-ErrorType), and records
 * every request so a test can assert exactly what the SDK sent. Signatures are checked for presence, not verified.
 */
interface AwsJob {
  jobId: string;
  request: Record<string, unknown>;
  status: 'IN_PROGRESS' | 'CANCELED' | 'COMPLETED';
  executions: Map<
    string,
    {
      status: string;
      executionNumber: number;
      retryAttempt: number;
      queuedAt: number;
      startedAt?: number;
      detailsMap: Record<string, string>;
    }
  >;
}

export async function startAwsIotEndpoint() {
  const requests: RecordedRequest[] = [];
  const groups = new Map<string, { thingGroupName: string; thingGroupArn: string; thingGroupId: string }>();
  const things = new Map<
    string,
    { thingName: string; thingArn: string; thingId: string; attributes: Record<string, string> }
  >();
  const policies = new Map<
    string,
    { policyName: string; policyArn: string; policyDocument: string; versions: number }
  >();
  const principals = new Map<string, string[]>();
  const policyTargets = new Map<string, string[]>();
  const membership = new Map<string, string[]>();
  const jobs = new Map<string, AwsJob>();
  let certs = 0;
  const arn = (kind: string, name: string) => `arn:aws:iot:eu-central-1:123456789012:${kind}/${name}`;

  const send = (res: ServerResponse, status: number, body?: unknown, errorType?: string) => {
    res.writeHead(status, { 'content-type': 'application/json', ...(errorType && { 'x-amzn-errortype': errorType }) });
    res.end(body === undefined ? '' : JSON.stringify(body));
  };
  const notFound = (res: ServerResponse, what: string) =>
    send(res, 404, { message: `${what} not found` }, 'ResourceNotFoundException');

  type Route = [
    string,
    RegExp,
    (m: RegExpMatchArray, req: RecordedRequest, res: ServerResponse, raw: IncomingMessage) => void,
  ];
  const routes: Route[] = [
    // jobs' routes are pushed below
    [
      'GET',
      /^\/thing-groups\/([^/]+)$/,
      (m, _r, res) => {
        const g = groups.get(m[1]!);
        g ? send(res, 200, { ...g, version: 1 }) : notFound(res, `thing group ${m[1]}`);
      },
    ],
    [
      'POST',
      /^\/thing-groups\/([^/]+)$/,
      (m, _r, res) => {
        const g = { thingGroupName: m[1]!, thingGroupArn: arn('thinggroup', m[1]!), thingGroupId: `g-${m[1]}` };
        groups.set(m[1]!, g);
        send(res, 200, g);
      },
    ],
    [
      'GET',
      /^\/policies\/([^/]+)$/,
      (m, _r, res) => {
        const p = policies.get(m[1]!);
        p
          ? send(res, 200, {
              policyName: p.policyName,
              policyArn: p.policyArn,
              policyDocument: p.policyDocument,
              defaultVersionId: String(p.versions),
            })
          : notFound(res, `policy ${m[1]}`);
      },
    ],
    [
      'POST',
      /^\/policies\/([^/]+)$/,
      (m, r, res) => {
        const p = {
          policyName: m[1]!,
          policyArn: arn('policy', m[1]!),
          policyDocument: (r.body as { policyDocument: string }).policyDocument,
          versions: 1,
        };
        policies.set(m[1]!, p);
        send(res, 200, {
          policyName: p.policyName,
          policyArn: p.policyArn,
          policyDocument: p.policyDocument,
          policyVersionId: '1',
        });
      },
    ],
    [
      'POST',
      /^\/policies\/([^/]+)\/version$/,
      (m, r, res) => {
        const p = policies.get(m[1]!);
        if (!p) return notFound(res, `policy ${m[1]}`);
        p.versions++;
        p.policyDocument = (r.body as { policyDocument: string }).policyDocument;
        send(res, 200, {
          policyArn: p.policyArn,
          policyDocument: p.policyDocument,
          policyVersionId: String(p.versions),
          isDefaultVersion: true,
        });
      },
    ],
    [
      'GET',
      /^\/endpoint$/,
      (_m, r, res) =>
        send(res, 200, {
          endpointAddress:
            r.query.endpointType === 'iot:Data-ATS'
              ? 'a1b2c3d4e5f6g7-ats.iot.eu-central-1.amazonaws.com'
              : 'a1b2c3d4e5f6g7.iot.eu-central-1.amazonaws.com',
        }),
    ],
    [
      'GET',
      /^\/things\/([^/]+)$/,
      (m, _r, res) => {
        const t = things.get(m[1]!);
        t ? send(res, 200, { ...t, version: 1 }) : notFound(res, `thing ${m[1]}`);
      },
    ],
    [
      'POST',
      /^\/things\/([^/]+)$/,
      (m, r, res) => {
        const t = {
          thingName: m[1]!,
          thingArn: arn('thing', m[1]!),
          thingId: `t-${m[1]}`,
          attributes:
            (r.body as { attributePayload?: { attributes?: Record<string, string> } }).attributePayload?.attributes ??
            {},
        };
        things.set(m[1]!, t);
        send(res, 200, { thingName: t.thingName, thingArn: t.thingArn, thingId: t.thingId });
      },
    ],
    [
      // UpdateThing: merge false replaces the attributes; merge true merges them, an empty value removes one
      'PATCH',
      /^\/things\/([^/]+)$/,
      (m, r, res) => {
        const t = things.get(m[1]!);
        if (!t) return notFound(res, `thing ${m[1]}`);
        const p = (r.body as { attributePayload?: { attributes?: Record<string, string>; merge?: boolean } })
          .attributePayload;
        const next = p?.merge ? { ...t.attributes, ...p.attributes } : { ...(p?.attributes ?? {}) };
        t.attributes = Object.fromEntries(Object.entries(next).filter(([, v]) => v !== ''));
        send(res, 200, {});
      },
    ],
    [
      'GET',
      /^\/things\/([^/]+)\/principals$/,
      (m, _r, res) =>
        things.has(m[1]!)
          ? send(res, 200, { principals: principals.get(m[1]!) ?? [] })
          : notFound(res, `thing ${m[1]}`),
    ],
    [
      'PUT',
      /^\/things\/([^/]+)\/principals$/,
      (m, _r, res, raw) => {
        const p = String(raw.headers['x-amzn-principal'] ?? '');
        principals.set(m[1]!, [...(principals.get(m[1]!) ?? []), p]);
        send(res, 200, {});
      },
    ],
    [
      'POST',
      /^\/keys-and-certificate$/,
      (_m, _r, res) => {
        certs++;
        const id = `${'c'.repeat(56)}${String(certs).padStart(8, '0')}`;
        send(res, 200, {
          certificateArn: arn('cert', id),
          certificateId: id,
          certificatePem: `-----BEGIN CERTIFICATE-----\nMIIcert${certs}\n-----END CERTIFICATE-----\n`,
          keyPair: {
            PublicKey: '-----BEGIN PUBLIC KEY-----\nMIIpub\n-----END PUBLIC KEY-----\n',
            PrivateKey: `-----BEGIN RSA PRIVATE KEY-----\nSECRET-KEY-${certs}\n-----END RSA PRIVATE KEY-----\n`,
          },
        });
      },
    ],
    [
      'PUT',
      /^\/target-policies\/([^/]+)$/,
      (m, r, res) => {
        policyTargets.set(m[1]!, [...(policyTargets.get(m[1]!) ?? []), (r.body as { target: string }).target]);
        send(res, 200, {});
      },
    ],
    [
      'GET',
      /^\/things\/([^/]+)\/thing-groups$/,
      (m, _r, res) =>
        send(res, 200, {
          thingGroups: (membership.get(m[1]!) ?? []).map((g) => ({ groupName: g, groupArn: arn('thinggroup', g) })),
        }),
    ],
    [
      'PUT',
      /^\/thing-groups\/addThingToThingGroup$/,
      (_m, r, res) => {
        const b = r.body as { thingGroupName: string; thingName: string };
        if (!groups.has(b.thingGroupName) || !things.has(b.thingName)) return notFound(res, 'thing or group');
        membership.set(b.thingName, [...new Set([...(membership.get(b.thingName) ?? []), b.thingGroupName])]);
        for (const j of jobs.values()) {
          const targeted = (j.request.targets as string[]).some((t) => groupOfArn(t) === b.thingGroupName);
          if (targeted && j.status === 'IN_PROGRESS' && j.request.targetSelection === 'CONTINUOUS') {
            if (!j.executions.has(b.thingName)) queueExecution(j, b.thingName);
          }
        }
        send(res, 200, {});
      },
    ],
    [
      'GET',
      /^\/thing-groups\/([^/]+)\/things$/,
      (m, _r, res) =>
        send(res, 200, { things: [...membership.entries()].filter(([, g]) => g.includes(m[1]!)).map(([t]) => t) }),
    ],
  ];

  /** A job's execution for a thing, as AWS creates it (continuous jobs: when the thing joins a target group). */
  const queueExecution = (job: AwsJob, thing: string, retryAttempt = 0) => {
    job.executions.set(thing, {
      status: 'QUEUED',
      executionNumber: ++executionNumbers,
      retryAttempt,
      queuedAt: Date.now() / 1000,
      detailsMap: {},
    });
  };
  let executionNumbers = 0;
  const groupOfArn = (a: string) => a.slice(a.lastIndexOf('/') + 1);
  routes.push(
    [
      'PUT',
      /^\/jobs\/([^/]+)$/,
      (m, r, res) => {
        if (jobs.has(m[1]!)) return send(res, 409, { message: `job ${m[1]} exists` }, 'ResourceAlreadyExistsException');
        const b = r.body as Record<string, unknown> & { targets: string[]; targetSelection?: string };
        const job: AwsJob = { jobId: m[1]!, request: b, status: 'IN_PROGRESS', executions: new Map() };
        jobs.set(m[1]!, job);
        for (const target of b.targets) {
          const g = groupOfArn(target);
          for (const [thing, gs] of membership) if (gs.includes(g)) queueExecution(job, thing);
        }
        send(res, 200, { jobId: job.jobId, jobArn: arn('job', job.jobId), description: b.description });
      },
    ],
    [
      'GET',
      /^\/jobs\/([^/]+)$/,
      (m, _r, res) => {
        const j = jobs.get(m[1]!);
        j
          ? send(res, 200, {
              job: {
                jobId: j.jobId,
                jobArn: arn('job', j.jobId),
                status: j.status,
                targetSelection: j.request.targetSelection,
              },
            })
          : notFound(res, `job ${m[1]}`);
      },
    ],
    [
      'PUT',
      /^\/jobs\/([^/]+)\/cancel$/,
      (m, _r, res) => {
        const j = jobs.get(m[1]!);
        if (!j) return notFound(res, `job ${m[1]}`);
        j.status = 'CANCELED';
        for (const e of j.executions.values()) if (e.status === 'QUEUED') e.status = 'CANCELED';
        send(res, 200, { jobId: j.jobId, jobArn: arn('job', j.jobId) });
      },
    ],
    [
      'GET',
      /^\/jobs\/([^/]+)\/things$/,
      (m, r, res) => {
        const j = jobs.get(m[1]!);
        if (!j) return notFound(res, `job ${m[1]}`);
        // pages of 2, so the SDK's paging is exercised
        const all = [...j.executions.entries()];
        const from = Number(r.query.nextToken ?? 0);
        const page = all.slice(from, from + 2);
        send(res, 200, {
          executionSummaries: page.map(([thing, e]) => ({
            thingArn: arn('thing', thing),
            jobExecutionSummary: {
              status: e.status,
              executionNumber: e.executionNumber,
              retryAttempt: e.retryAttempt,
              queuedAt: e.queuedAt,
              ...(e.startedAt && { startedAt: e.startedAt }),
            },
          })),
          ...(from + 2 < all.length && { nextToken: String(from + 2) }),
        });
      },
    ],
    [
      'GET',
      /^\/things\/([^/]+)\/jobs\/([^/]+)$/,
      (m, _r, res) => {
        const e = jobs.get(m[2]!)?.executions.get(m[1]!);
        e
          ? send(res, 200, {
              execution: {
                jobId: m[2],
                thingArn: arn('thing', m[1]!),
                status: e.status,
                executionNumber: e.executionNumber,
                statusDetails: { detailsMap: e.detailsMap },
              },
            })
          : notFound(res, `execution of ${m[2]} on ${m[1]}`);
      },
    ],
    [
      'PUT',
      /^\/things\/([^/]+)\/jobs\/([^/]+)\/cancel$/,
      (m, _r, res) => {
        const e = jobs.get(m[2]!)?.executions.get(m[1]!);
        if (!e) return notFound(res, `execution of ${m[2]} on ${m[1]}`);
        if (e.status !== 'QUEUED') {
          return send(res, 409, { message: `execution is ${e.status}` }, 'InvalidStateTransitionException');
        }
        e.status = 'CANCELED';
        send(res, 200, {});
      },
    ],
    [
      'DELETE',
      /^\/thing-groups\/([^/]+)$/,
      (m, _r, res) => {
        groups.delete(m[1]!);
        for (const [thing, gs] of membership)
          membership.set(
            thing,
            gs.filter((g) => g !== m[1]),
          );
        send(res, 200, {});
      },
    ],
  );

  const server = createServer((req, res) => {
    let data = '';
    req.on('data', (d) => (data += d));
    req.on('end', () => {
      const url = new URL(req.url ?? '/', 'http://local');
      const rec: RecordedRequest = {
        method: req.method ?? 'GET',
        path: decodeURIComponent(url.pathname),
        query: Object.fromEntries(url.searchParams),
        body: data ? JSON.parse(data) : undefined,
        signed: /^AWS4-HMAC-SHA256 Credential=/.test(String(req.headers.authorization ?? '')),
      };
      requests.push(rec);
      for (const [method, re, handler] of routes) {
        const m = rec.path.match(re);
        if (m && method === rec.method) return handler(m, rec, res, req);
      }
      send(res, 400, { message: `unsupported ${rec.method} ${rec.path}` }, 'InvalidRequestException');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return {
    url: `http://127.0.0.1:${(server.address() as { port: number }).port}`,
    requests,
    state: { groups, things, policies, principals, policyTargets, membership, jobs },
    /**
     * A device takes its execution of a job to a status, as the device API would (and AWS then applies the job's
     * retry configuration: a failed or timed-out attempt is queued again while retries are left).
     */
    device(
      thing: string,
      jobId: string,
      status: 'IN_PROGRESS' | 'SUCCEEDED' | 'FAILED' | 'TIMED_OUT',
      details: Record<string, string> = {},
    ) {
      const j = jobs.get(jobId);
      const e = j?.executions.get(thing);
      if (!j || !e) throw new Error(`no execution of ${jobId} on ${thing}`);
      Object.assign(e, { status, detailsMap: details });
      if (status === 'IN_PROGRESS') e.startedAt = Date.now() / 1000;
      const retry = (j.request.jobExecutionsRetryConfig as { criteriaList: { numberOfRetries: number }[] } | undefined)
        ?.criteriaList[0]?.numberOfRetries;
      if ((status === 'FAILED' || status === 'TIMED_OUT') && retry !== undefined && e.retryAttempt < retry) {
        queueExecution(j, thing, e.retryAttempt + 1);
      }
    },
    /** A thing made on AWS directly (console, another tool), in a group. */
    addThing(name: string, group: string, attributes: Record<string, string>) {
      things.set(name, { thingName: name, thingArn: arn('thing', name), thingId: `t-${name}`, attributes });
      membership.set(name, [...(membership.get(name) ?? []), group]);
    },
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}
