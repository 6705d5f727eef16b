// The dashboard's pages. Each takes the route argument and { h, api, refresh } and returns an element.

const time = (ms) => (ms ? new Date(ms).toLocaleString() : '—');
const pct = (n) => `${Math.round(n * 100)}%`;
const STATUSES = [
  'SUCCEEDED',
  'IN_PROGRESS',
  'QUEUED',
  'FAILED',
  'TIMED_OUT',
  'REJECTED',
  'CANCELED',
  'REMOVED',
  'NOT_STARTED',
];

function table(h, headers, rows, caption) {
  return h(
    'div',
    { class: 'scroll' },
    h(
      'table',
      {},
      caption && h('caption', { class: 'muted' }, caption),
      h(
        'thead',
        {},
        h(
          'tr',
          {},
          headers.map((x) => h('th', { scope: 'col' }, x)),
        ),
      ),
      h(
        'tbody',
        {},
        rows.map((r) =>
          h(
            'tr',
            {},
            r.map((c) => h('td', {}, c)),
          ),
        ),
      ),
    ),
  );
}

/** The newest health report's headline figures, and its warnings in words (not colour alone). */
function healthCell(h, health) {
  if (!health) return h('span', { class: 'muted' }, '—');
  const figures = [
    health.cpuTempC !== undefined ? `${health.cpuTempC.toFixed(0)} °C` : null,
    health.memUsedPct !== undefined ? `mem ${health.memUsedPct.toFixed(0)} %` : null,
    health.diskUsedPct !== undefined ? `disk ${health.diskUsedPct.toFixed(0)} %` : null,
  ].filter(Boolean);
  const warnings = [health.underVoltage ? 'under-voltage' : null, health.throttled ? 'throttled' : null].filter(
    Boolean,
  );
  return h(
    'span',
    { title: `as of ${time(health.at)}` },
    figures.join(' · ') || '—',
    warnings.length ? h('span', { class: 'bad' }, ` ${warnings.join(', ')}`) : '',
  );
}

function riskCell(h, risk) {
  if (!risk) return h('span', { class: 'muted' }, '—');
  const cls = risk.risk >= 0.8 ? 'bad' : risk.risk >= 0.5 ? 'warn' : 'ok';
  return h(
    'span',
    { class: cls },
    `${risk.risk.toFixed(2)}${risk.mode && risk.risk >= 0.5 ? ` ${risk.mode}` : ''}`,
    risk.risk >= 0.5 && risk.signals?.length
      ? h('span', { class: 'muted' }, ` (${risk.signals.map((s) => s.metric).join(', ')})`)
      : '',
  );
}

/** A status bar of a wave: one coloured segment per execution status, with a text equivalent. */
function statusBar(h, counts, size) {
  const parts = STATUSES.filter((s) => counts[s]);
  return h(
    'div',
    { class: 'row' },
    h(
      'div',
      { class: 'bar', role: 'img', 'aria-label': parts.map((s) => `${counts[s]} ${s}`).join(', ') || 'empty' },
      parts.map((s) => h('span', { class: `s-${s}`, style: `width:${(counts[s] / Math.max(1, size)) * 100}%` })),
    ),
    h('span', {}, parts.map((s) => `${counts[s]} ${s.toLowerCase().replace('_', ' ')}`).join(' · ') || 'no devices'),
  );
}

/** A uPlot line chart of one series. */
function chart(h, title, xs, ys, unit = '') {
  const box = h('figure', { class: 'chart' }, h('figcaption', {}, `${title}${unit ? ` (${unit})` : ''}`));
  const width = 320;
  new uPlot(
    {
      width,
      height: 180,
      series: [{}, { label: title, stroke: '#0b5cad', width: 2 }],
      axes: [{}, { size: 50 }],
      legend: { show: true },
    },
    [xs.map((t) => t / 1000), ys],
    box,
  );
  return box;
}

/** A device's failure label, and the form an operator confirms a failure with (what the predictor learns from). */
/** What the last save of a device's tags said: shown by the form the page is re-rendered with. */
let tagsSaved = '';

/** Tags (`key=value`, space-separated) and hardware of a device: what selectors, layers and rollouts match on. */
function tagsForm(h, api, refresh, d) {
  const tagsInput = h('input', {
    id: 'device-tags',
    size: 40,
    value: Object.entries(d.tags ?? {})
      .map(([k, v]) => `${k}=${v}`)
      .join(' '),
    'aria-describedby': 'device-tags-help',
  });
  const hardware = h('input', { id: 'device-hardware', size: 12, value: d.hardware ?? '' });
  const status = h('span', { role: 'status', 'aria-live': 'polite' }, tagsSaved);
  tagsSaved = '';
  return h(
    'form',
    {
      class: 'row',
      'aria-label': 'Tags and hardware',
      onsubmit: async (e) => {
        e.preventDefault();
        const pairs = tagsInput.value.split(/\s+/).filter(Boolean);
        const bad = pairs.find((p) => !/^[^=]+=.*$/.test(p));
        if (bad) {
          status.replaceChildren(h('span', { class: 'error', role: 'alert' }, `"${bad}" is not key=value`));
          return;
        }
        try {
          const r = await api('PATCH', `/api/devices/${encodeURIComponent(d.id)}`, {
            tags: Object.fromEntries(pairs.map((p) => [p.slice(0, p.indexOf('=')), p.slice(p.indexOf('=') + 1)])),
            hardware: hardware.value.trim() || null,
          });
          // the page is drawn again with what the controller now has; its form says what happened
          const now = `${pairs.join(' ') || 'no tags'}, hardware ${r.device.hardware ?? 'none'}`;
          tagsSaved = r.changed.length ? `Saved ${r.changed.join(' and ')}: ${now}.` : `Nothing changed: ${now}.`;
          document.activeElement?.blur();
          await refresh();
        } catch (err) {
          status.replaceChildren(h('span', { class: 'error', role: 'alert' }, err.message));
        }
      },
    },
    h('label', { for: 'device-tags' }, 'Tags'),
    tagsInput,
    h('span', { id: 'device-tags-help', class: 'muted' }, 'key=value, space-separated'),
    h('label', { for: 'device-hardware' }, 'Hardware'),
    hardware,
    h('button', { type: 'submit', class: 'secondary' }, 'Save'),
    status,
  );
}

function labelForm(h, api, refresh, id, label) {
  if (label) {
    return h(
      'p',
      { id: 'failure-label' },
      `Labelled ${label.status} (${label.mode}) by ${label.actor} on ${time(label.ts)}. `,
      h(
        'button',
        {
          type: 'button',
          class: 'secondary',
          onclick: async () => {
            if (!window.confirm(`Remove the failure label of ${id}?`)) return;
            await api('DELETE', `/api/devices/${encodeURIComponent(id)}/failure`);
            refresh();
          },
        },
        'Remove label',
      ),
    );
  }
  const modes = ['failure', 'flash-wear', 'thermal', 'power-supply', 'memory-leak', 'flaky-link'];
  const mode = h(
    'select',
    { id: 'failure-mode' },
    modes.map((m) => h('option', { value: m }, m)),
  );
  const replaced = h('input', { id: 'failure-replaced', type: 'checkbox' });
  return h(
    'form',
    {
      class: 'row',
      'aria-label': 'Failure label',
      onsubmit: async (e) => {
        e.preventDefault();
        if (!window.confirm(`Label ${id} as ${replaced.checked ? 'replaced' : 'failed'} (${mode.value})?`)) return;
        await api('POST', `/api/devices/${encodeURIComponent(id)}/failure`, {
          mode: mode.value,
          status: replaced.checked ? 'replaced' : 'failed',
        });
        refresh();
      },
    },
    h('label', { for: 'failure-mode' }, 'Failure mode'),
    mode,
    h('label', { for: 'failure-replaced' }, 'Replaced'),
    replaced,
    h('button', { type: 'submit', class: 'danger' }, 'Mark failed'),
  );
}

/** The raw readings (a thin grey line) and what the edge kept (blue points joined), on one time axis. */
function rawVersusKept(h, title, raw, kept) {
  const box = h('figure', { class: 'chart' }, h('figcaption', {}, raw.length ? `${title}: raw and kept` : title));
  const ts = [...new Set([...raw, ...kept].map((r) => r.ts))].sort((a, b) => a - b);
  const at = (list) => {
    const m = new Map(list.map((r) => [r.ts, r.value]));
    return ts.map((t) => m.get(t) ?? null);
  };
  const series = [{}];
  const data = [ts.map((t) => t / 1000)];
  if (raw.length) {
    series.push({ label: 'raw', stroke: '#8c959f', width: 1, spanGaps: true });
    data.push(at(raw));
  }
  series.push({ label: 'kept', stroke: '#0b5cad', width: 2, spanGaps: true, points: { show: true, size: 5 } });
  data.push(at(kept));
  const width = Math.max(300, Math.min(900, (document.getElementById('view')?.clientWidth ?? 700) - 40));
  new uPlot({ width, height: 260, series }, data, box);
  return box;
}

export const views = {
  async fleet(_arg, { h, api, refresh }) {
    const { devices } = await api('GET', '/api/devices');
    const filter = sessionStorage.getItem('fleet-filter') ?? '';
    const [fk, fv] = filter.includes('=') ? filter.split('=') : [null, null];
    const shown = devices.filter((d) => !fk || d.tags?.[fk] === fv);
    const online = devices.filter((d) => d.presence === 'online').length;
    const atRisk = devices.filter((d) => d.risk && d.risk.risk >= 0.8).length;
    const input = h('input', { id: 'filter', value: filter, placeholder: 'site=north', size: 20 });
    return h(
      'section',
      { 'aria-labelledby': 'fleet-title' },
      h('h1', { id: 'fleet-title' }, 'Fleet'),
      h(
        'p',
        {},
        `${devices.length} devices · ${online} online · `,
        h('span', { class: atRisk ? 'bad' : 'ok' }, `${atRisk} at risk`),
      ),
      h(
        'form',
        {
          class: 'row',
          onsubmit: (e) => {
            e.preventDefault();
            sessionStorage.setItem('fleet-filter', input.value.trim());
            input.blur();
            refresh();
          },
        },
        h('label', { for: 'filter' }, 'Filter by tag'),
        input,
        h('button', { type: 'submit', class: 'secondary' }, 'Filter'),
      ),
      table(
        h,
        ['Device', 'Presence', 'Hardware', 'Releases', 'Health', 'Risk', 'Tags', 'Last seen'],
        shown.map((d) => [
          h('a', { href: `#/device/${encodeURIComponent(d.id)}` }, d.id),
          h(
            'span',
            { class: d.revokedAt ? 'bad' : d.presence === 'online' ? 'ok' : 'muted' },
            d.revokedAt ? 'revoked' : d.presence,
          ),
          d.hardware ?? '—',
          Object.entries(d.releases ?? {})
            .map(([k, v]) => `${k} ${v}`)
            .join(', ') || '—',
          healthCell(h, d.health),
          riskCell(h, d.risk),
          Object.entries(d.tags ?? {})
            .map(([k, v]) => `${k}=${v}`)
            .join(' '),
          time(d.lastSeen),
        ]),
        `${shown.length} of ${devices.length} devices`,
      ),
    );
  },

  async device(id, { h, api, refresh }) {
    const [info, health, events] = await Promise.all([
      api('GET', `/api/devices/${encodeURIComponent(id)}`),
      api('GET', `/api/devices/${encodeURIComponent(id)}/health`).catch(() => ({ samples: [], score: null })),
      api('GET', '/api/rollouts/events'),
    ]);
    const d = info.device;
    const samples = health.samples ?? [];
    const charts = ['cpuTempC', 'memUsedPct', 'load1', 'wifiSignalDbm', 'reconnects', 'backlogDepth']
      .filter((m) => samples.some((s) => typeof s.metrics[m] === 'number'))
      .map((m) =>
        chart(
          h,
          m,
          samples.map((s) => s.ts),
          samples.map((s) => s.metrics[m] ?? null),
        ),
      );
    const updates = events.events.filter((e) => e.kind === 'execution.changed' && e.details.device === id).slice(-20);
    let telemetry = [];
    try {
      telemetry = (await api('GET', `/api/telemetry?device=${encodeURIComponent(id)}&limit=20&pick=newest`)).records
        .map((c) => c.record)
        .slice(-20);
    } catch {}
    return h(
      'section',
      { 'aria-labelledby': 'device-title' },
      h('p', {}, h('a', { href: '#/fleet' }, '← Fleet')),
      h('h1', { id: 'device-title' }, `Device ${d.id}`),
      table(
        h,
        ['Presence', 'Hardware', 'Agent', 'Releases', 'Risk', 'Backlog'],
        [
          [
            d.presence,
            d.hardware ?? '—',
            d.agentVersion ?? '—',
            Object.entries(d.releases ?? {})
              .map(([k, v]) => `${k} ${v}`)
              .join(', ') || '—',
            riskCell(h, health.score),
            info.backlog
              ? `${info.backlog.depth} records, oldest ${Math.round((info.backlog.oldestAgeMs ?? 0) / 1000)} s`
              : '—',
          ],
        ],
      ),
      tagsForm(h, api, refresh, d),
      labelForm(h, api, refresh, id, health.label),
      h('h2', {}, 'Health'),
      charts.length ? h('div', { class: 'charts' }, charts) : h('p', { class: 'muted' }, 'No health reports yet.'),
      h('h2', {}, 'Update history'),
      updates.length
        ? table(
            h,
            ['When', 'Job', 'Status', 'Details'],
            updates.map((e) => [
              time(e.ts),
              e.details.job,
              e.details.status,
              e.details.details?.reason ?? e.details.details?.code ?? '',
            ]),
          )
        : h('p', { class: 'muted' }, 'No updates yet.'),
      h('h2', {}, 'Recent telemetry'),
      telemetry.length
        ? table(
            h,
            ['Time', 'Stream', 'Value', 'Seq'],
            telemetry.map((r) => [time(r.ts), r.stream, JSON.stringify(r.value ?? r.record ?? r), r.seq]),
          )
        : h('p', { class: 'muted' }, 'No telemetry in retention.'),
    );
  },

  async rollouts(_arg, { h, api }) {
    const { rollouts } = await api('GET', '/api/rollouts');
    const yaml = h('textarea', { id: 'plan', spellcheck: 'false', 'aria-describedby': 'plan-help' });
    yaml.value = sessionStorage.getItem('plan-draft') ?? '';
    yaml.addEventListener('input', () => sessionStorage.setItem('plan-draft', yaml.value));
    const out = h('div', { role: 'status', 'aria-live': 'polite' });
    const preview = async () => {
      try {
        const p = await api('POST', '/api/rollouts/plan', { yaml: yaml.value, source: 'dashboard' });
        out.replaceChildren(
          h(
            'p',
            {},
            `${p.devices} devices in ${p.waves.length} waves: ${p.waves.map((w) => `${w.name} ${w.size}`).join(', ')}`,
          ),
        );
      } catch (err) {
        out.replaceChildren(h('p', { class: 'error', role: 'alert' }, err.message));
      }
    };
    const apply = async () => {
      if (!window.confirm('Start this rollout now?')) return;
      try {
        const r = await api('POST', '/api/rollouts', { yaml: yaml.value, source: 'dashboard' });
        sessionStorage.removeItem('plan-draft');
        location.hash = `#/rollout/${encodeURIComponent(r.id)}`;
      } catch (err) {
        out.replaceChildren(h('p', { class: 'error', role: 'alert' }, err.message));
      }
    };
    return h(
      'section',
      { 'aria-labelledby': 'rollouts-title' },
      h('h1', { id: 'rollouts-title' }, 'Rollouts'),
      rollouts.length
        ? table(
            h,
            ['Rollout', 'Release', 'Status', 'Wave', 'Devices', 'Started'],
            [...rollouts]
              .sort((a, b) => b.createdAt - a.createdAt)
              .map((r) => [
                h('a', { href: `#/rollout/${encodeURIComponent(r.id)}` }, r.id),
                `${r.release.name} ${r.release.version}`,
                h('span', { class: statusClass(r.status) }, r.status),
                `${r.currentWave + 1} of ${r.waves.length}`,
                r.devices,
                time(r.createdAt),
              ]),
          )
        : h('p', { class: 'muted' }, 'No rollouts yet.'),
      h('h2', {}, 'New rollout'),
      h('label', { for: 'plan' }, 'Rollout plan (YAML)'),
      h(
        'p',
        { id: 'plan-help', class: 'muted' },
        'The same plan file as `fleetwave rollout apply`; Preview shows the waves without starting anything.',
      ),
      yaml,
      h(
        'div',
        { class: 'row' },
        h('button', { type: 'button', class: 'secondary', onclick: preview }, 'Preview'),
        h('button', { type: 'button', onclick: apply }, 'Start rollout'),
      ),
      out,
    );
  },

  async rollout(id, { h, api, refresh }) {
    const r = await api('GET', `/api/rollouts/${encodeURIComponent(id)}?devices=1`);
    const act = (cmd, question, body) => async () => {
      if (!window.confirm(question)) return;
      try {
        await api('POST', `/api/rollouts/${encodeURIComponent(id)}/${cmd}`, body ?? {});
        refresh();
      } catch (err) {
        alert(err.message);
      }
    };
    const controls = [];
    if (r.status === 'running' || r.status === 'awaiting-approval') {
      controls.push(
        h('button', { type: 'button', class: 'secondary', onclick: act('pause', `Pause ${id}?`) }, 'Pause'),
      );
    }
    if (r.status === 'paused')
      controls.push(h('button', { type: 'button', onclick: act('resume', `Resume ${id}?`) }, 'Resume'));
    if (r.status === 'awaiting-approval') {
      controls.push(
        h(
          'button',
          {
            type: 'button',
            onclick: act('approve', `Approve wave ${r.currentWave + 1} of ${id}?`, { wave: r.currentWave }),
          },
          `Approve wave ${r.currentWave + 1}`,
        ),
      );
    }
    if (!['completed', 'aborted', 'rolled-back', 'rolling-back'].includes(r.status)) {
      controls.push(
        h(
          'button',
          { type: 'button', class: 'danger', onclick: act('abort', `Abort ${id}? Devices not started are canceled.`) },
          'Abort',
        ),
      );
    }
    if (!['rolling-back', 'rolled-back'].includes(r.status)) {
      controls.push(
        h(
          'button',
          {
            type: 'button',
            class: 'danger',
            onclick: act('rollback', `Roll ${id} back? Updated devices return to their previous version.`),
          },
          'Roll back',
        ),
      );
    }
    return h(
      'section',
      { 'aria-labelledby': 'rollout-title' },
      h('p', {}, h('a', { href: '#/rollouts' }, '← Rollouts')),
      h('h1', { id: 'rollout-title' }, `Rollout ${r.id}`),
      h(
        'p',
        {},
        `${r.release.name} ${r.release.version} to ${r.devices} devices · `,
        h('strong', { class: statusClass(r.status), id: 'rollout-status' }, r.status),
        r.reason ? h('span', {}, ` — ${r.reason}`) : '',
      ),
      h('div', { class: 'row', role: 'group', 'aria-label': 'Rollout controls' }, controls),
      h('h2', {}, 'Waves'),
      table(
        h,
        ['Wave', 'Status', 'Devices by status', 'Thresholds', 'Health comparison'],
        r.waves.map((w) => [
          `${w.index + 1}. ${w.name}${w.approval ? ' (approval)' : ''}`,
          h('span', { class: `${statusClass(w.status)} wave-status`, 'data-wave': w.index }, w.status),
          statusBar(h, w.counts, w.size),
          [
            `success ≥ ${w.successThreshold}%`,
            w.failureThreshold
              ? ` · fail at ${w.failureThreshold.percent}% after ${w.failureThreshold.minFinished}`
              : '',
            w.bake ? ` · bake ${Math.round(w.bake / 60000)} min` : '',
            w.size ? ` · now ${pct((w.counts.SUCCEEDED ?? 0) / w.size)} succeeded` : '',
          ].join(''),
          w.health
            ? w.health
                .map((x) =>
                  x.p === null
                    ? `${x.metric}: not compared (n ${x.updated}/${x.notUpdated})`
                    : `${x.metric}: ${x.degraded ? 'worse' : 'no worse'} (p=${x.p.toPrecision(2)}, n ${x.updated}/${x.notUpdated})`,
                )
                .join('; ')
            : r.healthGate
              ? 'judged when the bake ends'
              : '—',
        ]),
      ),
      r.rollback ? h('h2', {}, 'Rollback') : '',
      r.rollback
        ? r.rollback.devices
          ? statusBar(h, r.rollback.counts, r.rollback.devices)
          : h('p', {}, 'No device needed it: no update had succeeded (a device whose install fails rolls itself back).')
        : '',
      r.deferred
        ? h(
            'p',
            {},
            `Kept to the last wave for their failure risk: ${r.deferred.map((d) => `${d.device} (${d.risk.toFixed(2)})`).join(', ')}`,
          )
        : '',
      h('h2', {}, 'Devices'),
      table(
        h,
        ['Device', 'Wave', 'Hardware', 'From', 'Status', 'Reason'],
        r.waves.flatMap((w) =>
          (w.members ?? []).map((m) => [
            h('a', { href: `#/device/${encodeURIComponent(m.device)}` }, m.device),
            w.index + 1,
            m.hardware,
            m.fromVersion ?? '—',
            `${m.status}${m.rollback ? ` → rollback ${m.rollback}` : ''}`,
            m.reason ?? '',
          ]),
        ),
      ),
    );
  },

  async telemetry(arg, { h, api }) {
    const { devices } = await api('GET', '/api/devices');
    const [device = devices[0]?.id ?? '', stream = ''] = arg ? arg.split('|') : [];
    let records = [];
    if (device) {
      records = (
        await api('GET', `/api/telemetry?device=${encodeURIComponent(device)}&limit=5000&pick=newest`)
      ).records.map((c) => c.record);
    }
    const streams = [...new Set(records.map((r) => r.stream))].filter((s) => !s.startsWith('_raw/')).sort();
    const chosen = stream || streams.find((s) => !s.startsWith('_health/')) || streams[0] || '';
    const points = records.filter((r) => r.stream === chosen && typeof r.value === 'number');
    const raw = records.filter((r) => r.stream === `_raw/${chosen}` && typeof r.value === 'number');
    const pick = h(
      'select',
      { id: 'device-pick' },
      devices.map((d) => h('option', { value: d.id, selected: d.id === device }, d.id)),
    );
    const pickStream = h(
      'select',
      { id: 'stream-pick' },
      streams.map((s) => h('option', { value: s, selected: s === chosen }, s)),
    );
    const go = () => {
      location.hash = `#/telemetry/${encodeURIComponent(`${pick.value}|${pick.value === device ? pickStream.value : ''}`)}`;
    };
    pick.addEventListener('change', go);
    pickStream.addEventListener('change', go);
    return h(
      'section',
      { 'aria-labelledby': 'telemetry-title' },
      h('h1', { id: 'telemetry-title' }, 'Telemetry'),
      h(
        'div',
        { class: 'row' },
        h('label', { for: 'device-pick' }, 'Device'),
        pick,
        h('label', { for: 'stream-pick' }, 'Stream'),
        pickStream,
      ),
      points.length
        ? rawVersusKept(h, chosen, raw, points)
        : h('p', { class: 'muted' }, 'No numeric readings of this stream in retention.'),
      h(
        'p',
        { id: 'reduction' },
        raw.length
          ? `${raw.length} raw readings, ${points.length} kept by the edge filters (${Math.round((1 - points.length / raw.length) * 100)}% not sent)`
          : `${points.length} readings the edge filters kept; the raw ones are not sent (set mirrorRaw on the stream's filter rule to see them here)`,
      ),
    );
  },

  async events(_arg, { h, api }) {
    const { events } = await api('GET', '/api/rollouts/events');
    return h(
      'section',
      { 'aria-labelledby': 'events-title' },
      h('h1', { id: 'events-title' }, 'Events'),
      table(
        h,
        ['When', 'Rollout', 'Event', 'Details'],
        events
          .slice(-100)
          .reverse()
          .map((e) => [time(e.ts), e.rollout || 'fleet', e.kind, JSON.stringify(e.details).slice(0, 200)]),
      ),
    );
  },

  /** The controller replicas on this database: which one leads, since when, and how far each one's feeds lag. */
  async cluster(_arg, { h, api }) {
    const c = await api('GET', '/api/cluster');
    return h(
      'section',
      { 'aria-labelledby': 'cluster-title' },
      h('h1', { id: 'cluster-title' }, 'Cluster'),
      h(
        'p',
        {},
        c.leader
          ? `Leader: ${c.leader.replica}, since ${time(c.leader.since)} (fencing token ${c.leader.token}). This page is served by ${c.replica}.`
          : 'No leader now: the lease ran out, and a replica takes it within a lease.',
      ),
      table(
        h,
        ['Replica', 'Role', 'Started', 'Last seen', 'Lag', 'API'],
        c.replicas.map((r) => [
          `${r.id}${r.id === c.replica ? ' (this one)' : ''}`,
          r.leading ? 'leader' : 'follower',
          time(r.startedAt),
          time(r.seenAt),
          Object.entries(r.lag)
            .map(([k, n]) => `${k} ${n}`)
            .join(', ') || '0',
          r.http ?? '',
        ]),
      ),
    );
  },
};

function statusClass(s) {
  if (['completed', 'succeeded', 'SUCCEEDED', 'accepted'].includes(s)) return 'ok';
  if (['failed', 'aborted', 'rolled-back', 'rolling-back', 'FAILED'].includes(s)) return 'bad';
  if (['paused', 'awaiting-approval', 'baking'].includes(s)) return 'warn';
  return '';
}
