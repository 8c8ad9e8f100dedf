// faultline web page: plots. Sparklines of a target's signals with their
// baselines, and an experiment's timeline with the fault window shaded and
// the recovery point marked.
'use strict';
(function (F) {
  const svg = F.svg;
  const el = F.el;

  /** Room above the largest value, for the scale label. */
  const HEADROOM = 1.3;

  const poly = (pts) => pts.map(([x, y]) => `${x.toFixed(1)},${y.toFixed(1)}`).join(' ');

  /** Where a signal's axis starts, and the least top it gets. */
  function yRange(name, values) {
    const floor = name === 'retry_amplification' ? 1 : 0;
    const least = {
      error_rate: 0.05, timeout_rate: 0.05, retry_amplification: 1.5, retries: 2,
      out_of_order: 2, queue_depth: 4,
    }[name] ?? 1;
    const top = Math.max(least, ...values.filter(Number.isFinite)) * HEADROOM;
    return [floor, Math.max(top, floor + 1e-9)];
  }

  /**
   * One signal of one target over time. `points` = [{t, value, base, ok}],
   * oldest first; `span` is the time range shown (ms) ending at `now`.
   */
  F.sparkline = function sparkline(name, points, span, now) {
    const [Wd, Hd, pad] = [260, 64, 4];
    const latest = points[points.length - 1];
    // End at the newest point while it is recent (windows close a little
    // behind the clock), else at now, so a quiet target visibly stops.
    const t1 = latest && latest.t >= now - 5000 ? latest.t : now;
    // The last `span` at most; less while there is less history.
    span = F.clamp(t1 - (points.length ? points[0].t : t1), 10000, span);
    const t0 = t1 - span;
    const shown = points.filter((p) => p.t >= t0);
    const [y0, y1] = yRange(name, shown.flatMap((p) => [p.value, p.base]));
    const x = (t) => pad + ((t - t0) / span) * (Wd - 2 * pad);
    const y = (v) => Hd - pad - ((F.clamp(v, y0, y1) - y0) / (y1 - y0)) * (Hd - 2 * pad);
    const line = shown.filter((p) => Number.isFinite(p.value)).map((p) => [x(p.t), y(p.value)]);
    const base = shown.filter((p) => Number.isFinite(p.base)).map((p) => [x(p.t), y(p.base)]);
    const plot = svg('svg', { class: 'spark-plot', viewBox: `0 0 ${Wd} ${Hd}` },
      svg('line', { class: 'spark-axis', x1: pad, x2: Wd - pad, y1: Hd - pad, y2: Hd - pad }));
    if (line.length > 1) {
      const area = [[line[0][0], Hd - pad], ...line, [line[line.length - 1][0], Hd - pad]];
      plot.append(svg('polygon', { class: 'spark-area', points: poly(area) }));
    }
    if (base.length > 1) plot.append(svg('polyline', { class: 'spark-base', points: poly(base) }));
    if (line.length) plot.append(svg('polyline', { class: 'spark-line', points: poly(line) }));
    for (const p of shown) {
      if (p.ok === false && Number.isFinite(p.value)) {
        plot.append(svg('circle', { class: 'spark-alarm', cx: x(p.t), cy: y(p.value), r: 2.6 }));
      }
    }
    plot.append(svg('text', { class: 'spark-scale', x: Wd - pad, y: 11, 'text-anchor': 'end', text: F.fmtSignal(name, y1 / HEADROOM) }));
    const bad = latest && latest.ok === false;
    return el('div', { class: 'spark' + (bad ? ' alarm' : ''), 'data-signal': name, 'data-points': shown.length },
      el('div', { class: 'spark-head' },
        el('span', { class: 'spark-name', text: F.signalLabel(name) }),
        el('span', { class: 'spark-value', text: latest ? F.fmtSignal(name, latest.value) : '–' }),
        el('span', { class: 'spark-baseline', text: name === 'calls' ? 'the volume signals are judged on'
          : latest && Number.isFinite(latest.base) ? 'baseline ' + F.fmtSignal(name, latest.base) : 'no baseline yet' })),
      plot);
  };

  /** The signals an experiment's plot shows: what went out of band first. */
  function timelineSignals(result, points) {
    const seen = new Set(points.flatMap((p) => Object.keys(p.signals || {})));
    const wanted = [];
    const add = (s) => { if (seen.has(s) && !wanted.includes(s)) wanted.push(s); };
    points.forEach((p) => (p.out_of_band || []).forEach(add));
    Object.keys(result.peak || {}).filter((k) => k.startsWith(result.target + '/'))
      .forEach((k) => add(k.slice(result.target.length + 1)));
    ['p99_ms', 'error_rate', 'retry_amplification', 'queue_lag_ms'].forEach(add);
    const order = (s) => { const i = F.SIGNAL_ORDER.indexOf(s); return i < 0 ? 99 : i; };
    return wanted.slice(0, 3).sort((a, b) => order(a) - order(b));
  }

  /** One experiment result (ExperimentResult JSON) as a card with a timeline. */
  F.experimentCard = function experimentCard(r) {
    const keys = [...new Set((r.timeline || []).map((p) => p.key))];
    const key = keys.includes(r.target) ? r.target : keys[0];
    const points = (r.timeline || []).filter((p) => p.key === key).sort((a, b) => a.window_end_ms - b.window_end_ms);
    const signals = timelineSignals({ ...r, target: key }, points);

    const [Wd, gutter, row, top, bottom] = [1280, 150, 58, 22, 26];
    const Hd = top + Math.max(1, signals.length) * row + bottom;
    const t0 = Math.min(r.started_ms, ...points.map((p) => p.window_end_ms));
    const t1 = Math.max(r.ended_ms || 0, r.fault_end_ms, ...points.map((p) => p.window_end_ms), t0 + 1);
    const x = (t) => gutter + ((t - t0) / (t1 - t0)) * (Wd - gutter - 12);
    const plot = svg('svg', { class: 'timeline', viewBox: `0 0 ${Wd} ${Hd}`, 'data-run-id': r.run_id });

    // The fault window, shaded across every row.
    const fx0 = x(r.fault_start_ms);
    const fx1 = x(r.fault_end_ms);
    plot.append(svg('rect', {
      class: 'fault-window', x: fx0, y: top - 4, width: Math.max(1, fx1 - fx0), height: Hd - top - bottom + 4,
      'data-start-ms': r.fault_start_ms, 'data-end-ms': r.fault_end_ms,
    }));
    plot.append(svg('text', { class: 'fault-label', x: (fx0 + fx1) / 2, y: top - 8, 'text-anchor': 'middle', text: r.aborted ? 'fault (aborted)' : 'fault' }));

    signals.forEach((name, i) => {
      const y0px = top + i * row + 6;
      const y1px = top + (i + 1) * row - 8;
      const values = points.map((p) => p.signals[name]);
      const band = (r.baseline || {})[`${key}/${name}`];
      const [lo, hi] = yRange(name, values.concat(band ? [band.upper] : []));
      const y = (v) => y1px - ((F.clamp(v, lo, hi) - lo) / (hi - lo)) * (y1px - y0px);
      const g = svg('g', { class: 'timeline-row', 'data-signal': name },
        svg('text', { class: 'row-label', x: 8, y: y0px + 14, text: F.signalLabel(name) }),
        svg('text', { class: 'row-scale', x: 8, y: y0px + 30, text: 'max ' + F.fmtSignal(name, hi / HEADROOM) }),
        svg('line', { class: 'row-axis', x1: gutter, x2: Wd - 12, y1: y1px, y2: y1px }));
      if (band && Number.isFinite(band.upper)) {
        g.append(svg('line', { class: 'band-upper', x1: gutter, x2: Wd - 12, y1: y(band.upper), y2: y(band.upper) }));
      }
      const line = points.filter((p) => Number.isFinite(p.signals[name])).map((p) => [x(p.window_end_ms), y(p.signals[name])]);
      if (line.length) g.append(svg('polyline', { class: 'row-line', points: poly(line) }));
      for (const p of points) {
        const v = p.signals[name];
        if (!Number.isFinite(v)) continue;
        const out = (p.out_of_band || []).includes(name);
        g.append(svg('circle', {
          class: `point phase-${p.phase}` + (out ? ' out-of-band' : ''),
          cx: x(p.window_end_ms), cy: y(v), r: out ? 3.4 : 2.4,
        }, svg('title', { text: `${p.phase} ${F.fmtClock(p.window_end_ms)}: ${F.fmtSignal(name, v)}` })));
      }
      plot.append(g);
    });

    const axisY = Hd - bottom + 16;
    const stepS = Math.max(5, Math.ceil((t1 - t0) / 1000 / 8 / 5) * 5);
    for (let s = Math.ceil((t0 - r.fault_start_ms) / 1000 / stepS) * stepS; r.fault_start_ms + s * 1000 <= t1; s += stepS) {
      plot.append(svg('text', { class: 'tick', x: x(r.fault_start_ms + s * 1000), y: axisY, 'text-anchor': 'middle', text: (s > 0 ? '+' : '') + s + 's' }));
    }
    if (Number.isFinite(r.time_to_detect_ms)) {
      const dx = x(r.fault_start_ms + r.time_to_detect_ms);
      plot.append(svg('g', { class: 'detect-marker', 'data-at-ms': r.fault_start_ms + r.time_to_detect_ms },
        svg('line', { x1: dx, x2: dx, y1: top - 4, y2: Hd - bottom }),
        svg('title', { text: `detected after ${F.fmtMs(r.time_to_detect_ms)}` })));
    }
    if (Number.isFinite(r.time_to_recover_ms)) {
      const at = r.fault_end_ms + r.time_to_recover_ms;
      const rx = x(at);
      plot.append(svg('g', { class: 'recovery-marker', 'data-at-ms': at },
        svg('line', { x1: rx, x2: rx, y1: top - 4, y2: Hd - bottom }),
        svg('circle', { cx: rx, cy: top - 4, r: 4 }),
        svg('text', { x: rx + 6, y: top - 8, text: `recovered +${F.fmtMs(r.time_to_recover_ms)}` })));
    } else {
      plot.append(svg('text', { class: 'no-recovery', x: Wd - 14, y: top - 8, 'text-anchor': 'end', text: 'not recovered' }));
    }

    const facts = [
      ['target', F.keyLabel(r.target)],
      ['proxy', r.proxy],
      ['fault', F.fmtMs(r.fault_end_ms - r.fault_start_ms)],
      ['detected', Number.isFinite(r.time_to_detect_ms) ? '+' + F.fmtMs(r.time_to_detect_ms) : 'no'],
      ['recovered', Number.isFinite(r.time_to_recover_ms) ? '+' + F.fmtMs(r.time_to_recover_ms) : 'no'],
      ['trend', r.trend],
    ].filter(([, v]) => v !== undefined && v !== null && v !== '');
    return el('div', { class: 'experiment', 'data-run-id': r.run_id, 'data-scenario-id': r.scenario_id, 'data-verdict': r.verdict },
      el('div', { class: 'experiment-head' },
        el('span', { class: `verdict verdict-${r.verdict}`, text: r.verdict }),
        el('span', { class: 'experiment-title', text: r.title || r.scenario_id }),
        el('span', { class: 'muted', text: F.fmtClock(r.started_ms) })),
      el('dl', { class: 'facts' }, facts.map(([k, v]) => [el('dt', { text: k }), el('dd', { text: v })])),
      r.aborted ? el('p', { class: 'aborted', text: 'aborted: ' + r.aborted }) : null,
      (r.reasons || []).length ? el('ul', { class: 'reasons' }, r.reasons.map((t) => el('li', { text: t }))) : null,
      plot);
  };
})(window.Faultline);
