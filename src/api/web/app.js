// faultline web page: polls the JSON API once a second and renders every
// panel. State that the API only gives as "recent windows" (the signals of
// a selected target) is accumulated here, keyed by window end.
'use strict';
(function (F) {
  const el = F.el;
  const POLL_MS = 1000;
  const KEEP_POINTS = 600; // per target: ten minutes of 1 s windows
  const SPARK_SPAN_MS = 120000;
  const IDLE_MS = 5000; // an edge without a window this recent is drawn idle

  const state = {
    graph: null,
    edgeLatest: new Map(), // edge key → latest signal record
    edgeSince: 0,
    series: new Map(), // target key → Map(window_end_ms → record)
    since: new Map(), // target key → newest window_end_ms fetched
    hotspots: [],
    hotspotsAt: null,
    anomalies: { active: [], recent: [] },
    scenarios: undefined, // undefined: not asked yet; null: not in this build
    experiments: undefined,
    selected: null,
    pinned: false, // the user chose the selection (else: the top hotspot)
    tick: 0,
    lastOk: 0,
  };

  /** GET a JSON document; {missing: true} on 404, {error} otherwise. */
  async function getJson(path) {
    try {
      const reply = await fetch(path, { headers: { accept: 'application/json' }, cache: 'no-store' });
      if (reply.status === 404 || reply.status === 405) return { missing: true };
      if (!reply.ok) return { error: `${path}: HTTP ${reply.status}` };
      return { body: await reply.json() };
    } catch (err) {
      return { error: `${path}: ${err.message || err}` };
    }
  }

  function remember(record) {
    let s = state.series.get(record.key);
    if (!s) state.series.set(record.key, (s = new Map()));
    s.set(record.window_end_ms, record);
    if (s.size > KEEP_POINTS) {
      const old = [...s.keys()].sort((a, b) => a - b).slice(0, s.size - KEEP_POINTS);
      old.forEach((k) => s.delete(k));
    }
    state.since.set(record.key, Math.max(state.since.get(record.key) || 0, record.window_end_ms));
  }

  function select(key, pinned) {
    if (!key) return;
    state.selected = key;
    state.pinned = pinned || state.pinned;
    if (pinned) history.replaceState(null, '', '#select=' + encodeURIComponent(key));
    render();
    poll(false);
  }

  async function poll(full) {
    const jobs = [];
    const want = (path, apply) => jobs.push(getJson(path).then((r) => { apply(r); return r; }));
    if (full) {
      want('api/graph?window=all', (r) => { if (r.body) state.graph = r.body; });
      want(`api/signals?kind=edge&since=${state.edgeSince}`, (r) => {
        for (const rec of (r.body && r.body.records) || []) {
          const prev = state.edgeLatest.get(rec.key);
          if (!prev || prev.window_end_ms <= rec.window_end_ms) state.edgeLatest.set(rec.key, rec);
          state.edgeSince = Math.max(state.edgeSince, rec.window_end_ms);
          remember(rec);
        }
      });
      want('api/hotspots', (r) => {
        if (!r.body) return;
        state.hotspots = r.body.hotspots || [];
        state.hotspotsAt = r.body.at_ms;
      });
      want('api/anomalies', (r) => { if (r.body) state.anomalies = r.body; });
      // Not every build has these; once missing, ask again only now and then.
      if (state.scenarios !== null || state.tick % 10 === 0) {
        want('api/scenarios', (r) => { if (r.body || r.missing) state.scenarios = r.missing ? null : r.body; });
      }
      if (state.experiments !== null || state.tick % 10 === 0) {
        want('api/experiments', (r) => { if (r.body || r.missing) state.experiments = r.missing ? null : r.body; });
      }
      state.tick++;
    }
    const key = state.selected;
    if (key && F.keyType(key) !== 'edge') {
      want(`api/signals?target=${encodeURIComponent(key)}&since=${state.since.get(key) || 0}`, (r) => {
        ((r.body && r.body.records) || []).forEach(remember);
      });
    }
    const results = await Promise.all(jobs);
    const failed = results.find((r) => r.error);
    if (!failed && full) state.lastOk = Date.now();
    setStatus(failed ? failed.error : null);
    if (!state.pinned && state.hotspots.length && state.selected !== state.hotspots[0].key) {
      state.selected = state.hotspots[0].key;
      if (F.keyType(state.selected) !== 'edge') await poll(false);
    }
    render();
  }

  function setStatus(error) {
    const status = document.getElementById('status');
    const g = state.graph;
    if (error) {
      status.dataset.state = 'error';
      status.textContent = `unreachable — ${error}` + (state.lastOk ? ` (last update ${F.fmtClock(state.lastOk)})` : '');
    } else if (g) {
      status.dataset.state = 'live';
      status.textContent = `live · ${g.nodes.length} nodes · ${g.edges.length} edges · windows to ${F.fmtClock(g.window.end_ms)}`;
    }
  }

  /** The latest window end seen anywhere: "now" in the data's clock. */
  function dataNow() {
    return Math.max(state.edgeSince, state.hotspotsAt || 0, (state.graph && state.graph.window.end_ms) || 0) || Date.now();
  }

  function edgeModel(e, now) {
    const key = `edge:${e.source}->${e.target}`;
    const rec = state.edgeLatest.get(key);
    const fresh = rec && rec.window_end_ms >= now - IDLE_MS;
    const sig = (name) => (fresh && rec.signals[name]) || null;
    const seconds = fresh
      ? Math.max(0.001, (rec.window_end_ms - rec.window_start_ms) / 1000)
      : Math.max(1, (state.graph.window.end_ms - state.graph.window.start_ms) / 1000);
    const calls = fresh ? rec.calls : e.calls;
    const rate = calls / seconds;
    const errorRate = sig('error_rate') ? sig('error_rate').value : e.error_rate;
    const p99 = sig('p99_ms') ? sig('p99_ms').value : e.latency_ms && e.latency_ms.p99;
    const base = sig('p99_ms') && sig('p99_ms').baseline ? sig('p99_ms').baseline.median : null;
    const ratio = base && p99 ? p99 / Math.max(base, 0.001) : 1;
    const errSev = Math.sqrt(F.clamp((errorRate || 0) / 0.25));
    const latSev = ratio > 1.25 ? F.clamp(Math.log2(ratio) / 3) : 0;
    const outOfTolerance = fresh && Object.values(rec.signals).some((s) => s && s.within_tolerance === false);
    const severity = Math.max(errSev, latSev, outOfTolerance ? 0.6 : 0);
    const note = [];
    if (errorRate > 0) note.push(F.fmtPct(errorRate) + ' err');
    if (base && ratio >= 1.5) note.push(`${ratio.toFixed(ratio >= 10 ? 0 : 1)}× baseline`);
    const title = [
      `${e.source} → ${e.target} (${e.kind})`,
      `${F.fmtRate(rate)}, ${F.fmtPct(errorRate)} errors, p99 ${F.fmtMs(p99)}` + (base ? ` (baseline ${F.fmtMs(base)})` : ''),
      fresh ? `window ending ${F.fmtClock(rec.window_end_ms)}` : 'no calls in the last windows',
    ].join('\n');
    return {
      key, source: e.source, target: e.target, kind: e.kind, severity, idle: !fresh,
      width: F.clamp(1.4 + 2.1 * Math.log10(1 + rate), 1.4, 11),
      label: fresh ? `${F.fmtRate(rate)} · p99 ${F.fmtMs(p99)}` : 'idle',
      note: fresh ? note.join(' · ') : '',
      rate: fresh ? rate : 0,
      title,
    };
  }

  function renderGraph(now) {
    const g = state.graph;
    const svgEl = document.getElementById('graph');
    const empty = !g || g.nodes.length === 0;
    document.getElementById('graph-empty').hidden = !empty;
    svgEl.classList.toggle('hidden', empty);
    if (empty) return;
    const ranks = new Map(state.hotspots.map((h) => [h.key, h.rank]));
    const highlight = new Set();
    if (state.selected && F.keyType(state.selected) === 'path') {
      const nodes = state.selected.slice(5).split('>');
      for (let i = 0; i + 1 < nodes.length; i++) highlight.add(`edge:${nodes[i]}->${nodes[i + 1]}`);
    }
    const edges = g.edges.map((e) => edgeModel(e, now));
    const inbound = new Map();
    for (const e of edges) inbound.set(e.target, (inbound.get(e.target) || 0) + e.rate);
    const nodes = g.nodes.map((n) => {
      const kind = n.kind;
      const what = n.system || (kind === 'service' ? '' : kind === 'messaging' ? 'queue' : kind);
      const bits = [what, inbound.get(n.id) ? F.fmtRate(inbound.get(n.id)) + ' in' : ''];
      if (n.error_rate >= 0.01) bits.push(F.fmtPct(n.error_rate) + ' err');
      return {
        id: n.id, kind, errorRate: n.error_rate,
        sub: bits.filter(Boolean).join(' · '),
        title: `${n.id} (${kind}${n.system ? ', ' + n.system : ''})\n${n.calls} calls, ${F.fmtPct(n.error_rate)} errors` +
          (n.latency_ms ? `, p99 ${F.fmtMs(n.latency_ms.p99)}` : ''),
      };
    });
    const drawn = throughQueues(g, nodes, edges);
    F.renderGraph(svgEl, { nodes, edges: drawn, ranks, selected: state.selected, highlight }, (key) => select(key, true));
  }

  /**
   * A queue whose producers and consumers are both instrumented has no node
   * of its own: its spans pair into one producer → consumer edge. Draw it
   * anyway, as users think of it, with each such edge running through it
   * (both halves keep the edge's key, so selecting and ranking still work).
   */
  function throughQueues(g, nodes, edges) {
    const known = new Set(nodes.map((n) => n.id));
    let out = edges;
    for (const d of g.destinations || []) {
      if (known.has(d.name) || !(d.producers || []).length) continue;
      known.add(d.name);
      const bits = [d.system || 'queue', `${d.in_flight} in flight`];
      if (d.out_of_order) bits.push(`${d.out_of_order} out of order`);
      nodes.push({
        id: d.name, kind: 'messaging', errorRate: 0, sub: bits.join(' · '),
        title: `${d.name} (queue${d.system ? ', ' + d.system : ''})\n${d.produced} produced, ${d.consumed} consumed`,
      });
      const via = (e) => e.kind === 'messaging' && d.producers.includes(e.source) && d.consumers.includes(e.target);
      out = out.flatMap((e) => (via(e)
        ? [{ ...e, target: d.name, note: '' }, { ...e, source: d.name, label: '', half: 'consume' }]
        : [e]));
    }
    return out;
  }

  function renderHotspots() {
    document.getElementById('hotspots-at').textContent = state.hotspotsAt ? 'at ' + F.fmtClock(state.hotspotsAt) : '';
    const rows = state.hotspots.map((h) => {
      const comps = [...(h.components || [])].sort((a, b) => b.points - a.points);
      const factors = [];
      if (h.target_factor !== undefined && h.target_factor !== 1) factors.push(`× ${h.target_factor} (${F.keyType(h.key)})`);
      if (h.feedback_weight !== undefined && h.feedback_weight !== 1) factors.push(`× ${h.feedback_weight.toFixed(2)} feedback`);
      return el('tr', {
        class: 'hotspot' + (h.key === state.selected ? ' selected' : ''),
        'data-key': h.key, 'data-rank': h.rank, 'data-score': h.score,
        onclick: () => select(h.key, true),
      },
      el('td', { class: 'rank' }, el('span', { class: 'rank-chip', text: h.rank })),
      el('td', { class: 'target' },
        el('span', { class: 'key-type', text: F.keyType(h.key) }),
        el('span', { class: 'key-name', title: h.key, text: F.keyLabel(h.key) })),
      el('td', { class: 'num score', text: h.score.toFixed(1) }),
      el('td', { class: 'why' },
        el('ul', { class: 'components' }, comps.map((c, i) => el('li', {
          class: 'component' + (i >= 3 ? ' minor' : ''), 'data-name': c.name, title: `${c.name}: ${F.fmtNum(c.value)}`,
        }, el('span', { class: 'points', text: '+' + c.points.toFixed(1) }), ' ', c.why))),
        factors.length ? el('span', { class: 'factors muted', text: factors.join(' ') }) : null));
    });
    F.fill(document.querySelector('#hotspots tbody'), rows, 'hotspots-empty');
    document.getElementById('hotspots').hidden = rows.length === 0;
  }

  function renderSignals(now) {
    const key = state.selected;
    const label = document.getElementById('selected-key');
    label.textContent = key ? F.keyLabel(key) : '';
    label.dataset.key = key || '';
    const records = [...((key && state.series.get(key)) || new Map()).values()].sort((a, b) => a.window_end_ms - b.window_end_ms);
    const names = F.SIGNAL_ORDER.filter((n) => records.some((r) => r.signals[n]));
    // Calls per window beside the signals: the volume they were judged on.
    if (records.length) names.push('calls');
    const cards = names.map((name) => F.sparkline(name, records.map((r) => {
      const s = name === 'calls' ? { value: r.calls, baseline: null } : r.signals[name];
      return {
        t: r.window_end_ms,
        value: s ? s.value : NaN,
        base: s && s.baseline ? s.baseline.median : NaN,
        ok: s ? s.within_tolerance : undefined,
      };
    }), SPARK_SPAN_MS, now));
    const container = document.getElementById('signals');
    container.dataset.key = key || '';
    F.fill(container, cards, 'signals-empty');
  }

  function anomalyItem(a, now, active) {
    const base = a.baseline ? F.fmtSignal(a.signal, a.baseline.median) : '–';
    const when = a.state === 'end' && a.ended_ms
      ? `ended ${F.fmtAgo(a.ended_ms, now)}`
      : `since ${F.fmtClock(a.started_ms)} (${F.fmtAgo(a.started_ms, now)})`;
    return el('li', {
      class: `anomaly ${active ? 'active' : 'recent'} state-${a.state}`,
      'data-id': a.id, 'data-key': a.key, 'data-signal': a.signal,
      title: a.reason || '',
      onclick: () => select(a.key, true),
    },
    el('span', { class: 'anomaly-state', text: active ? 'active' : a.state === 'end' ? 'ended' : 'started' }),
    el('span', { class: 'anomaly-what' },
      el('b', { text: F.signalLabel(a.signal) }), ' on ', el('span', { class: 'key', text: F.keyLabel(a.key) })),
    el('span', { class: 'anomaly-detail muted' },
      a.signal === 'new_signature'
        ? `new trace shape, ${when}`
        : `${F.fmtSignal(a.signal, a.value)} vs ${base}` + (Number.isFinite(a.z) ? `, z ${a.z.toFixed(1)}` : '') + `, ${when}`));
  }

  function renderAnomalies(now) {
    const active = state.anomalies.active || [];
    const activeIds = new Set(active.map((a) => a.id));
    const recent = [...(state.anomalies.recent || [])]
      .filter((e) => !(e.state === 'start' && activeIds.has(e.id)))
      .reverse()
      .slice(0, 12);
    const items = [...active.map((a) => anomalyItem(a, now, true)), ...recent.map((a) => anomalyItem(a, now, false))];
    document.getElementById('anomalies-count').textContent = `${active.length} active · ${(state.anomalies.recent || []).length} recent events`;
    F.fill(document.getElementById('anomalies'), items, 'anomalies-empty');
  }

  function renderPaths() {
    const paths = ((state.graph && state.graph.paths) || []).slice(0, 8);
    const items = paths.map((p) => {
      const key = 'path:' + p.nodes.join('>');
      const crit = p.critical_edge;
      return el('li', {
        class: 'path' + (key === state.selected ? ' selected' : ''), 'data-key': key,
        onclick: () => select(key, true),
      },
      el('span', { class: 'path-nodes', text: p.nodes.join(' › ') }),
      el('span', { class: 'muted' }, `${p.traces} traces · ${F.fmtPct(p.error_rate)} err · p99 ${F.fmtMs(p.latency_ms && p.latency_ms.p99)}` +
        (crit ? ` · most time in ${crit.source} → ${crit.target} (${F.fmtPct(crit.share)})` : '')));
    });
    F.fill(document.getElementById('paths'), items, 'paths-empty');
  }

  /** Evidence in whatever shape a scenario carries it: strings, objects, a map. */
  function evidenceItems(ev) {
    if (!ev) return [];
    if (typeof ev === 'string') return [ev];
    if (Array.isArray(ev)) {
      return ev.map((x) => (typeof x === 'string' ? x : x.why || x.reason || x.text || x.id || JSON.stringify(x)));
    }
    return Object.entries(ev).flatMap(([k, v]) =>
      (Array.isArray(v) ? v : [v]).map((x) => `${k}: ${typeof x === 'string' ? x : x.components ? hotspotLine(x) : x.why || x.id || JSON.stringify(x)}`));
  }

  /** A hotspot as evidence: its rank, score and its strongest reasons. */
  function hotspotLine(h) {
    const why = [...h.components].sort((a, b) => b.points - a.points).slice(0, 2).map((c) => c.why);
    return `${h.key} ranked ${h.rank} (score ${Number(h.score).toFixed(1)}): ${why.join('; ')}`;
  }

  function renderScenarios() {
    const s = state.scenarios;
    const list = s ? (Array.isArray(s) ? s : s.scenarios || []) : [];
    const items = list.map((sc) => {
      const target = typeof sc.target === 'string' ? sc.target : sc.target && (sc.target.key || JSON.stringify(sc.target));
      const fault = sc.fault ? (sc.fault.kind || sc.fault.type || '') : '';
      return el('li', { class: 'scenario', 'data-id': sc.id, 'data-target': target || '' },
        el('div', { class: 'scenario-head' },
          sc.priority !== undefined ? el('span', { class: 'priority', text: 'P ' + F.fmtNum(sc.priority) }) : null,
          el('b', { text: sc.title || sc.id }),
          sc.source ? el('span', { class: 'tag', text: sc.source }) : null),
        el('div', { class: 'muted' }, [fault, target ? F.keyLabel(target) : ''].filter(Boolean).join(' on ')),
        sc.hypothesis ? el('div', { class: 'hypothesis', text: typeof sc.hypothesis === 'string' ? sc.hypothesis : sc.hypothesis.text || JSON.stringify(sc.hypothesis) }) : null,
        el('ul', { class: 'evidence' }, evidenceItems(sc.evidence).slice(0, 5).map((t) => el('li', { text: t }))));
    });
    document.getElementById('scenarios-empty').textContent = s === null ? 'No scenarios yet (this build serves none).' : 'No scenarios yet.';
    F.fill(document.getElementById('scenarios'), items, 'scenarios-empty');
  }

  function renderExperiments() {
    const x = state.experiments;
    const results = (x && (Array.isArray(x) ? x : x.results)) || [];
    const running = (x && !Array.isArray(x) && x.running) || [];
    const cards = [
      ...running.map((r) => el('div', { class: 'experiment running', 'data-run-id': r.run_id || '' },
        el('div', { class: 'experiment-head' },
          el('span', { class: 'verdict verdict-running', text: 'running' }),
          el('span', { class: 'experiment-title', text: r.title || r.scenario_id || r.run_id || 'experiment' }),
          r.phase ? el('span', { class: 'muted', text: r.phase }) : null))),
      ...[...results].sort((a, b) => b.started_ms - a.started_ms).slice(0, 6).map(F.experimentCard),
    ];
    document.getElementById('experiments-empty').textContent = x === null ? 'No experiments yet (this build runs none).' : 'No experiments yet.';
    F.fill(document.getElementById('experiments'), cards, 'experiments-empty');
  }

  function render() {
    const now = dataNow();
    for (const [name, fn] of [['graph', renderGraph], ['hotspots', renderHotspots], ['signals', renderSignals],
      ['anomalies', renderAnomalies], ['paths', renderPaths], ['scenarios', renderScenarios], ['experiments', renderExperiments]]) {
      try {
        fn(now);
      } catch (err) {
        // One panel's surprise must not blank the others.
        console.error(`faultline: rendering ${name}:`, err);
      }
    }
    document.body.dataset.ready = state.lastOk ? 'true' : 'false';
  }

  async function loop() {
    try {
      await poll(true);
    } finally {
      setTimeout(loop, POLL_MS);
    }
  }

  function start() {
    F.renderLegend(document.getElementById('legend'));
    const m = /^#select=(.+)$/.exec(location.hash);
    if (m) {
      state.selected = decodeURIComponent(m[1]);
      state.pinned = true;
    }
    loop();
  }

  F.state = state;
  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
  else start();
})(window.Faultline);
