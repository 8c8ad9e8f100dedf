// faultline web page: DOM helpers and number formatting shared by the
// other scripts. Classic scripts (no modules) so the page also runs from a
// file:// test harness; everything hangs off window.Faultline.
'use strict';
window.Faultline = window.Faultline || {};
(function (F) {
  const SVG_NS = 'http://www.w3.org/2000/svg';

  function build(make, tag, attrs, children) {
    const node = make(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (name === 'text') node.textContent = String(value);
      else if (name.startsWith('on')) node.addEventListener(name.slice(2), value);
      else node.setAttribute(name, String(value));
    }
    for (const child of children.flat(Infinity)) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  /** An HTML element: el('td', {class: 'num'}, '12'). */
  F.el = (tag, attrs, ...children) =>
    build((t) => document.createElement(t), tag, attrs, children);

  /** An SVG element: svg('rect', {x: 1, y: 2, width: 3, height: 4}). */
  F.svg = (tag, attrs, ...children) =>
    build((t) => document.createElementNS(SVG_NS, t), tag, attrs, children);

  /** Replaces a container's children and shows or hides its "empty" note. */
  F.fill = (container, nodes, emptyId) => {
    container.replaceChildren(...nodes);
    const empty = emptyId && document.getElementById(emptyId);
    if (empty) empty.hidden = nodes.length > 0;
  };

  F.clamp = (v, lo = 0, hi = 1) => Math.min(hi, Math.max(lo, v));

  F.fmtMs = (ms) => {
    if (ms === null || ms === undefined || !Number.isFinite(ms)) return '–';
    if (ms >= 10000) return (ms / 1000).toFixed(1) + ' s';
    if (ms >= 1000) return (ms / 1000).toFixed(2) + ' s';
    if (ms >= 100) return ms.toFixed(0) + ' ms';
    if (ms >= 10) return ms.toFixed(1) + ' ms';
    return ms.toFixed(2) + ' ms';
  };

  F.fmtPct = (rate) => {
    if (rate === null || rate === undefined || !Number.isFinite(rate)) return '–';
    const p = rate * 100;
    return (p > 0 && p < 10 ? p.toFixed(1) : p.toFixed(0)) + '%';
  };

  F.fmtNum = (v) => {
    if (v === null || v === undefined || !Number.isFinite(v)) return '–';
    const a = Math.abs(v);
    if (a >= 1e6) return (v / 1e6).toFixed(1) + 'M';
    if (a >= 1e4) return (v / 1e3).toFixed(0) + 'k';
    if (a >= 100 || Number.isInteger(v)) return v.toFixed(0);
    if (a >= 10) return v.toFixed(1);
    return v.toFixed(2);
  };

  F.fmtRate = (perSecond) => {
    if (!Number.isFinite(perSecond)) return '–';
    if (perSecond >= 10) return perSecond.toFixed(0) + '/s';
    if (perSecond >= 1) return perSecond.toFixed(1) + '/s';
    return (perSecond * 60).toFixed(1) + '/min';
  };

  /** A signal's value in its own unit. */
  F.fmtSignal = (name, v) => {
    if (name.endsWith('_ms')) return F.fmtMs(v);
    if (name.endsWith('_rate')) return F.fmtPct(v);
    if (name === 'retry_amplification') return Number.isFinite(v) ? v.toFixed(2) + '×' : '–';
    return F.fmtNum(v);
  };

  F.fmtClock = (ms) => {
    if (!ms) return '–';
    const d = new Date(ms);
    const two = (n) => String(n).padStart(2, '0');
    return `${two(d.getHours())}:${two(d.getMinutes())}:${two(d.getSeconds())}`;
  };

  F.fmtAgo = (ms, now) => {
    const s = Math.max(0, Math.round((now - ms) / 1000));
    if (s < 60) return `${s}s ago`;
    if (s < 3600) return `${Math.floor(s / 60)}m ${s % 60}s ago`;
    return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m ago`;
  };

  /** The signals in the order the page shows them. */
  F.SIGNAL_ORDER = [
    'error_rate', 'timeout_rate', 'p99_ms', 'retries', 'retry_amplification',
    'queue_depth', 'queue_lag_ms', 'out_of_order',
  ];

  F.signalLabel = (name) => ({
    error_rate: 'error rate',
    timeout_rate: 'timeout rate',
    p99_ms: 'p99 latency',
    retries: 'retries',
    retry_amplification: 'amplification',
    queue_depth: 'queue depth',
    queue_lag_ms: 'queue lag',
    out_of_order: 'out of order',
    calls: 'calls per window',
  }[name] || name.replace(/_/g, ' '));

  /** A target key made readable: edge:a->b → "a → b". */
  F.keyLabel = (key) => {
    const [type, ...rest] = String(key).split(':');
    const body = rest.join(':');
    if (type === 'edge') return body.replace('->', ' → ');
    if (type === 'path') return body.split('>').join(' › ');
    if (type === 'cluster') return 'cluster ' + body.slice(0, 8);
    return body || type;
  };

  F.keyType = (key) => String(key).split(':')[0];
})(window.Faultline);
