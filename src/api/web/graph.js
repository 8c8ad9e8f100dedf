// faultline web page: the interaction graph as SVG. A deterministic layered
// layout (longest path from the sources, left to right; cycles broken by a
// depth-first search in id order), node shapes by kind, edges by volume and
// severity, hotspot ranks as badges.
'use strict';
(function (F) {
  const W = 128; // node width
  const H = 44; // node height
  const COL = 264; // distance between layers
  const ROW = 110; // distance between nodes of one layer
  const MARGIN = { x: 24, top: 34, bottom: 40 };

  /**
   * Places nodes in layers. Returns {pos: Map(id → {x, y, layer}),
   * back: Set("a\u0000b") of edges drawn against the flow, width, height}.
   * The same graph always gets the same picture.
   */
  F.layout = function layout(nodeIds, edges) {
    const ids = [...nodeIds].sort();
    const out = new Map(ids.map((id) => [id, []]));
    const inc = new Map(ids.map((id) => [id, []]));
    for (const e of edges) {
      if (e.source === e.target || !out.has(e.source) || !out.has(e.target)) continue;
      if (out.get(e.source).includes(e.target)) continue;
      out.get(e.source).push(e.target);
      inc.get(e.target).push(e.source);
    }
    for (const list of out.values()) list.sort();

    // Break cycles: a depth-first search from the sources, in id order.
    const back = new Set();
    const mark = new Map();
    const roots = ids.filter((id) => inc.get(id).length === 0).concat(ids);
    for (const root of roots) {
      if (mark.has(root)) continue;
      const stack = [[root, 0]];
      mark.set(root, 1);
      while (stack.length) {
        const top = stack[stack.length - 1];
        const next = out.get(top[0])[top[1]++];
        if (next === undefined) {
          mark.set(top[0], 2);
          stack.pop();
        } else if (mark.get(next) === 1) {
          back.add(top[0] + '\u0000' + next);
        } else if (!mark.has(next)) {
          mark.set(next, 1);
          stack.push([next, 0]);
        }
      }
    }
    const fwd = (s, t) => !back.has(s + '\u0000' + t);

    // Longest path from the sources (Kahn's order over the forward edges).
    const layer = new Map(ids.map((id) => [id, 0]));
    const indeg = new Map(ids.map((id) => [id, inc.get(id).filter((s) => fwd(s, id)).length]));
    const queue = ids.filter((id) => indeg.get(id) === 0);
    while (queue.length) {
      const n = queue.shift();
      for (const t of out.get(n)) {
        if (!fwd(n, t)) continue;
        layer.set(t, Math.max(layer.get(t), layer.get(n) + 1));
        indeg.set(t, indeg.get(t) - 1);
        if (indeg.get(t) === 0) queue.push(t);
      }
    }
    const layers = [];
    for (const id of ids) (layers[layer.get(id)] ||= []).push(id);
    for (let i = 0; i < layers.length; i++) layers[i] ||= [];

    // Order each layer by the mean position of its neighbours (two sweeps).
    const index = new Map();
    const reindex = () => layers.forEach((l) => l.forEach((id, i) => index.set(id, (i + 0.5) / l.length)));
    const sortBy = (l, neighbours) => {
      const key = new Map(l.map((id) => {
        const ns = neighbours(id).filter((n) => index.has(n));
        const mean = ns.length ? ns.reduce((a, n) => a + index.get(n), 0) / ns.length : index.get(id);
        return [id, mean];
      }));
      l.sort((a, b) => key.get(a) - key.get(b) || (a < b ? -1 : a > b ? 1 : 0));
    };
    reindex();
    for (let pass = 0; pass < 2; pass++) {
      for (let i = 1; i < layers.length; i++) { sortBy(layers[i], (id) => inc.get(id)); reindex(); }
      for (let i = layers.length - 2; i >= 0; i--) { sortBy(layers[i], (id) => out.get(id)); reindex(); }
    }

    const rows = Math.max(1, ...layers.map((l) => l.length));
    const height = MARGIN.top + rows * ROW + MARGIN.bottom;
    const width = MARGIN.x * 2 + W + Math.max(0, layers.length - 1) * COL;
    const pos = new Map();
    layers.forEach((l, li) => {
      l.forEach((id, i) => {
        pos.set(id, {
          layer: li,
          x: MARGIN.x + W / 2 + li * COL,
          y: MARGIN.top + (rows * ROW) / 2 + (i - (l.length - 1) / 2) * ROW,
        });
      });
    });
    return { pos, back, width, height };
  };

  /** calm blue → amber → red, for a severity in 0..1. */
  F.severityColor = function severityColor(s) {
    const stops = [[0, [104, 138, 178]], [0.5, [224, 160, 48]], [1, [214, 64, 58]]];
    const v = F.clamp(s);
    let i = 0;
    while (i < stops.length - 2 && v > stops[i + 1][0]) i++;
    const [a, ca] = stops[i];
    const [b, cb] = stops[i + 1];
    const t = (v - a) / (b - a);
    const c = ca.map((x, k) => Math.round(x + (cb[k] - x) * t));
    return `rgb(${c[0]},${c[1]},${c[2]})`;
  };

  function nodeShape(kind) {
    const svg = F.svg;
    const [hw, hh] = [W / 2, H / 2];
    switch (kind) {
      case 'database': {
        const e = 7;
        return [
          svg('path', {
            class: 'shape',
            d: `M${-hw},${-hh + e} A${hw},${e} 0 0 1 ${hw},${-hh + e} V${hh - e} A${hw},${e} 0 0 1 ${-hw},${hh - e} Z`,
          }),
          svg('path', { class: 'shape-line', d: `M${-hw},${-hh + e} A${hw},${e} 0 0 0 ${hw},${-hh + e}` }),
        ];
      }
      case 'messaging':
        return [
          svg('rect', { class: 'shape', x: -hw, y: -hh, width: W, height: H, rx: hh }),
          ...[0, 7, 14].map((dx) =>
            svg('line', { class: 'shape-line', x1: hw - 22 + dx, x2: hw - 22 + dx, y1: -hh + 9, y2: hh - 9 })),
        ];
      case 'external': {
        const c = 14;
        return [svg('polygon', {
          class: 'shape',
          points: [[-hw + c, -hh], [hw - c, -hh], [hw, 0], [hw - c, hh], [-hw + c, hh], [-hw, 0]]
            .map((p) => p.join(',')).join(' '),
        })];
      }
      default:
        return [svg('rect', { class: 'shape', x: -hw, y: -hh, width: W, height: H, rx: 9 })];
    }
  }

  const truncate = (s, n) => (s.length > n ? s.slice(0, n - 1) + '…' : s);

  function badge(rank, key, x, y) {
    return F.svg('g', { class: 'rank-badge', 'data-key': key, 'data-rank': rank, transform: `translate(${x},${y})` },
      F.svg('circle', { r: 11 }),
      F.svg('text', { 'text-anchor': 'middle', dy: '0.35em', text: rank }));
  }

  /** Geometry of one edge: the curve, its end direction and its middle. */
  function curve(a, b, isBack, lane) {
    if (!isBack && b.layer > a.layer) {
      const x1 = a.x + W / 2;
      const x2 = b.x - W / 2;
      const dx = (x2 - x1) / 2;
      const p = [[x1, a.y], [x1 + dx, a.y], [x2 - dx, b.y], [x2, b.y]];
      return p;
    }
    // Against the flow, or within a layer: loop under the nodes.
    const drop = H / 2 + 34 + 14 * lane + 10 * Math.abs(a.layer - b.layer);
    const y = Math.max(a.y, b.y) + drop;
    const x1 = a.x + (b.x >= a.x ? 18 : -18);
    const x2 = b.x + (b.x >= a.x ? -18 : 18);
    return [[x1, a.y + H / 2], [x1, y], [x2, y], [x2, b.y + H / 2]];
  }

  const bezierAt = (p, t) => [0, 1].map((k) =>
    (1 - t) ** 3 * p[0][k] + 3 * (1 - t) ** 2 * t * p[1][k] + 3 * (1 - t) * t ** 2 * p[2][k] + t ** 3 * p[3][k]);

  /**
   * Draws `model` into the <svg> element. model = {nodes: [{id, kind,
   * system, sub, errorRate}], edges: [{key, source, target, kind, width,
   * severity, idle, label, title}], ranks: Map(key → rank), selected,
   * highlight: Set(edge keys)}; onSelect(key) is called on a click.
   */
  F.renderGraph = function renderGraph(svgEl, model, onSelect) {
    const svg = F.svg;
    const { pos, back, width, height } = F.layout(model.nodes.map((n) => n.id), model.edges);
    svgEl.setAttribute('viewBox', `0 0 ${width} ${height + 30 * back.size}`);
    // Wide graphs scroll sideways rather than shrink to unreadable text.
    svgEl.style.minWidth = `${Math.round(width * 0.8)}px`;
    svgEl.setAttribute('data-nodes', model.nodes.length);
    svgEl.setAttribute('data-edges', model.edges.length);

    const edgeLayer = svg('g', { class: 'edges' });
    const labelLayer = svg('g', { class: 'edge-labels' });
    const nodeLayer = svg('g', { class: 'nodes' });
    let lane = 0;
    const sorted = [...model.edges].sort((a, b) => (a.key < b.key ? -1 : 1));
    for (const e of sorted) {
      const a = pos.get(e.source);
      const b = pos.get(e.target);
      if (!a || !b) continue;
      const isBack = back.has(e.source + '\u0000' + e.target) || e.source === e.target;
      const p = curve(a, b, isBack, isBack ? lane++ : 0);
      const color = e.idle ? '#b6bfca' : F.severityColor(e.severity);
      const arrow = 6 + e.width * 0.9;
      // End the line short of the node and put an arrowhead there.
      const [ex, ey] = p[3];
      const dx = p[3][0] - p[2][0];
      const dy = p[3][1] - p[2][1];
      const len = Math.hypot(dx, dy) || 1;
      const [ux, uy] = [dx / len, dy / len];
      const stem = p.map((q) => q.slice());
      stem[3] = [ex - ux * arrow, ey - uy * arrow];
      const d = `M${stem[0]} C${stem[1]} ${stem[2]} ${stem[3]}`;
      const half = 3.5 + e.width * 0.55;
      const head = [[ex, ey], [stem[3][0] - uy * half, stem[3][1] + ux * half], [stem[3][0] + uy * half, stem[3][1] - ux * half]];
      const classes = ['edge', `edge-${e.kind}`];
      if (e.idle) classes.push('idle');
      if (e.key === model.selected) classes.push('selected');
      if (model.highlight.has(e.key)) classes.push('on-path');
      const g = svg('g', {
        class: classes.join(' '),
        'data-key': e.key,
        'data-source': e.source,
        'data-target': e.target,
        'data-kind': e.kind,
        'data-half': e.half || null,
        'data-severity': e.severity.toFixed(2),
        onclick: () => onSelect(e.key),
      },
      svg('title', { text: e.title }),
      svg('path', { class: 'edge-halo', d, 'stroke-width': e.width + 8 }),
      svg('path', { class: 'edge-line', d, stroke: color, 'stroke-width': e.width }),
      svg('polygon', { class: 'edge-head', points: head.map((q) => q.join(',')).join(' '), fill: color }),
      svg('path', { class: 'edge-hit', d }));
      edgeLayer.append(g);

      // Labels sit where the edge is its own: mid-way on a straight edge,
      // near the target on a bend (siblings from one source have parted
      // there), kept clear of the nodes at both ends.
      const bend = Math.abs(stem[3][1] - stem[0][1]) > 10 && !isBack;
      const [px, py] = bezierAt(stem, bend ? 0.72 : 0.5);
      const halfText = 3.4 * Math.max(e.label.length, (e.note || '').length);
      const lo = Math.min(stem[0][0], stem[3][0]) + halfText + 8;
      const hi = Math.max(stem[0][0], stem[3][0]) - halfText - 12;
      // A bend's labels sit at its target's height: only that node is in the way.
      const mx = isBack ? px : bend ? Math.min(px, hi) : lo > hi ? (lo + hi) / 2 : F.clamp(px, lo, hi);
      const rank = model.ranks.get(e.key);
      const gap = (rank ? 13 : 5) + e.width / 2;
      // Straight: rate above, note below. Bent: both on the outer side of
      // the bend, away from the siblings. Looping back: both under the loop.
      const rise = stem[3][1] - stem[0][1];
      const side = isBack || (bend && rise > 0) ? 'below' : bend ? 'above' : 'split';
      const lines = [e.label, e.note].filter(Boolean);
      const ys = side === 'split'
        ? [py - gap, py + gap + 9]
        : side === 'below'
          ? [py + gap + 9, py + gap + 22]
          : [py - gap - (lines.length - 1) * 13, py - gap];
      lines.forEach((text, i) => labelLayer.append(svg('text', {
        class: 'edge-label' + (i === 0 ? (e.severity >= 0.5 ? ' hot' : '') : ' edge-note'),
        'data-key': e.key, x: mx, y: ys[i], 'text-anchor': 'middle', text,
      })));
      if (rank && e.half !== 'consume') labelLayer.append(badge(rank, e.key, px, py));
    }

    for (const n of model.nodes) {
      const p = pos.get(n.id);
      const classes = ['node', `node-${n.kind}`];
      if (n.errorRate >= 0.05) classes.push('failing');
      const destKey = `destination:${n.id}`;
      const g = svg('g', {
        class: classes.join(' '),
        'data-id': n.id,
        'data-kind': n.kind,
        transform: `translate(${p.x},${p.y})`,
        onclick: n.kind === 'messaging' ? () => onSelect(destKey) : null,
      },
      svg('title', { text: n.title }),
      ...nodeShape(n.kind),
      svg('text', { class: 'node-name', 'text-anchor': 'middle', y: n.sub ? -3 : 4, text: truncate(n.id, 20) }),
      n.sub ? svg('text', { class: 'node-sub', 'text-anchor': 'middle', y: 13, text: truncate(n.sub, 26) }) : null);
      const rank = model.ranks.get(destKey);
      if (rank) g.append(badge(rank, destKey, W / 2 - 4, -H / 2 + 2));
      nodeLayer.append(g);
    }
    svgEl.replaceChildren(edgeLayer, nodeLayer, labelLayer);
  };

  /** The legend: node shapes by kind, the edge colour scale. */
  F.renderLegend = function renderLegend(container) {
    const svg = F.svg;
    const items = [];
    let x = 0;
    for (const kind of ['service', 'database', 'messaging', 'external']) {
      const shape = svg('g', { class: `legend-node node-${kind}`, transform: `translate(${x + 14},11) scale(0.16,0.3)` }, ...nodeShape(kind));
      items.push(shape, svg('text', { x: x + 32, y: 15, text: kind === 'messaging' ? 'queue' : kind }));
      x += kind === 'external' ? 92 : 88;
    }
    x += 10;
    const stops = [0, 0.25, 0.5, 0.75, 1];
    stops.forEach((s, i) => items.push(svg('rect', { x: x + i * 14, y: 6, width: 14, height: 10, fill: F.severityColor(s) })));
    items.push(svg('text', { x: x + 76, y: 15, text: 'healthy → errors / p99 over baseline' }));
    x += 76 + 236;
    items.push(svg('line', { class: 'legend-idle', x1: x, x2: x + 24, y1: 11, y2: 11 }));
    items.push(svg('text', { x: x + 30, y: 15, text: 'idle' }));
    x += 64;
    items.push(badge(1, 'legend', x + 11, 11), svg('text', { x: x + 28, y: 15, text: 'hotspot rank' }));
    x += 110;
    container.replaceChildren(svg('svg', { class: 'legend-svg', viewBox: `0 0 ${x} 22`, width: x, height: 22 }, ...items));
  };
})(window.Faultline);
