// The cluster explorer's pages. Each page loads only its own data files (data/*.js, which call
// EXPLORER.receive) and renders into <main>. No network: everything is relative to the site.
"use strict";

const EXPLORER = (() => {
  const waiting = {};
  const received = {};

  function receive(path, value) {
    received[path] = value;
    if (waiting[path]) waiting[path].forEach((resolve) => resolve(value));
    delete waiting[path];
  }

  function load(path) {
    if (path in received) return Promise.resolve(received[path]);
    if (waiting[path]) return new Promise((resolve) => waiting[path].push(resolve));
    return new Promise((resolve, reject) => {
      waiting[path] = [resolve];
      const script = document.createElement("script");
      script.src = "data/" + path;
      script.onerror = () => reject(new Error("no data file data/" + path + " in this site"));
      document.head.appendChild(script);
    });
  }

  // -- small helpers ------------------------------------------------------------------------
  const params = new URLSearchParams(location.search);
  const esc = (s) => String(s ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
  // a key or point from the address names a data file: only the characters partition keys use
  const checked = (name, what) => { if (!/^[\w.@|-]+$/.test(name)) throw new Error(`not a ${what}: ${name}`); return name; };
  const slug = (key) => { const [d, p] = checked(key, "partition key").split("|"); if (p === undefined) throw new Error(`not a partition key: ${key}`); return d + "--" + p.replace(/@/g, "-r"); };
  const num = (v, digits = 3) => (v === null || v === undefined ? "—" : typeof v === "number" ? (Number.isInteger(v) ? v.toLocaleString("en") : v.toFixed(digits)) : esc(v));
  const pct = (v) => (v === null || v === undefined ? "—" : (100 * v).toFixed(2) + "%");
  const clusterHref = (key, c) => "cluster.html?p=" + encodeURIComponent(key) + "&c=" + c;
  const partitionHref = (key) => "partition.html?p=" + encodeURIComponent(key);
  const tokenText = (t) => JSON.stringify(t).slice(1, -1);
  const CLASS_COLOURS = { word: "#4f43dd", subword: "#8f86ff", whitespace: "#b9c0cc", punctuation: "#f28e2b", digits: "#59a14f", code: "#e15759", other: "#76b7b2" };
  const main = () => document.getElementById("main");
  // a comparison table's top tokens: a list of token texts, or the text the comparison wrote
  const tokens = (v) => esc(Array.isArray(v) ? v.slice(0, 6).map(tokenText).join(" · ") : v);

  function crumbs(parts) {
    document.getElementById("crumbs").innerHTML = parts.map(([text, href]) => (href ? `<a href="${href}">${esc(text)}</a>` : `<span>${esc(text)}</span>`)).join("› ");
  }

  function fail(error) {
    main().innerHTML = `<p class="error">${esc(error.message || error)}</p>`;
    console.error(error);
  }

  function table(columns, rows, options = {}) {
    // columns: [{key, label, num?, render?}]; rows: objects. Sortable headers when options.sortable.
    const head = columns.map((c) => `<th data-key="${c.key}" class="${c.num ? "num" : ""} ${options.sortable ? "sortable" : ""}">${esc(c.label)}</th>`).join("");
    const body = rows.map((r) => "<tr>" + columns.map((c) => `<td class="${c.num ? "num" : ""}">${c.render ? c.render(r) : num(r[c.key])}</td>`).join("") + "</tr>").join("");
    return `<table${options.id ? ` id="${options.id}"` : ""}><thead><tr>${head}</tr></thead><tbody>${body}</tbody></table>`;
  }

  function classBar(classes) {
    const entries = Object.entries(classes || {}).filter(([, v]) => v > 0);
    const bar = entries.map(([k, v]) => `<span title="${k} ${pct(v)}" style="width:${100 * v}%;background:${CLASS_COLOURS[k] || "#999"}"></span>`).join("");
    const legend = entries.map(([k, v]) => `<span><i style="background:${CLASS_COLOURS[k] || "#999"}"></i>${k} ${pct(v)}</span>`).join("");
    return `<div class="bar" id="class-bar">${bar}</div><div class="legend">${legend}</div>`;
  }

  // -- index ----------------------------------------------------------------------------------
  async function indexPage() {
    const index = await load("index.js");
    crumbs([["partitions"]]);
    const columns = [
      { key: "dataset", label: "dataset", render: (r) => esc(r.dataset) },
      { key: "partition", label: "sweep partition", render: (r) => `<a href="${partitionHref(r.key)}">${esc(r.partition)}</a>` },
      { key: "method", label: "method", render: (r) => esc(r.method) },
      { key: "tokens", label: "tokens", num: true },
      { key: "kept_features", label: "kept features", num: true },
      { key: "clusters", label: "clusters", num: true },
      { key: "noise_features", label: "noise features", num: true },
      { key: "loss_recovered", label: "SAE loss recovered", num: true },
      { key: "explained_variance", label: "SAE explained variance", num: true },
      { key: "floor_ari", label: "replicate floor (ARI)", num: true },
    ];
    const points = index.points.map((p) => `<a href="comparison.html?point=${encodeURIComponent(p)}">${esc(p)}</a>`).join("");
    const figures = index.figures.map((f) => `<a href="report/${encodeURIComponent(f)}">${esc(f)}</a>`).join("");
    main().innerHTML = `<h1>Every dataset × sweep partition</h1>
      <p class="muted">The SAE's quality is sae-lens' evals on held-out text of the dataset; the floor is the ARI between two replicates of the point on the dataset.</p>
      ${table(columns, index.partitions, { id: "partitions" })}
      <h2>Clusters per partition</h2><div id="sizes" style="height:320px"></div>
      <h2>Comparisons across datasets</h2><div class="chips" id="points">${points || '<span class="muted">no comparison materialised</span>'}</div>
      <h2>The research report's figures</h2><div class="chips" id="figures">${figures || '<span class="muted">no report materialised</span>'}</div>`;
    const datasets = [...new Set(index.partitions.map((r) => r.dataset))];
    const traces = datasets.map((d) => {
      const rows = index.partitions.filter((r) => r.dataset === d);
      return { type: "bar", name: d, x: rows.map((r) => r.partition), y: rows.map((r) => r.clusters) };
    });
    Plotly.newPlot("sizes", traces, { barmode: "group", margin: { t: 10, r: 10, b: 90, l: 50 }, yaxis: { title: "clusters" } }, { displaylogo: false, responsive: true });
  }

  // -- one partition's cluster list ----------------------------------------------------------------
  async function partitionPage() {
    const key = params.get("p");
    if (!key) throw new Error("partition.html needs ?p=<dataset>|<sweep partition>");
    const data = await load("p/" + slug(key) + "/clusters.js");
    crumbs([["partitions", "index.html"], [key]]);
    const classes = [...new Set(data.rows.map((r) => r.token_class).filter(Boolean))].sort();
    const compared = data.rows.some((r) => r.matched !== null);
    main().innerHTML = `<h1>${esc(data.dataset)} · ${esc(data.partition)} <span class="muted">(${esc(data.method)}, ${data.rows.length.toLocaleString("en")} clusters)</span></h1>
      <div class="filters">
        <label>search <input type="search" id="search" placeholder="token text or feature id" value="${esc(params.get("q") || "")}"></label>
        <label>size ≥ <input type="number" id="min-size" min="1" value="${esc(params.get("min_size") || "1")}"></label>
        <label>kind <select id="kind"><option value="">any</option><option>single-token</option><option>contextual</option></select></label>
        <label>token class <select id="token-class"><option value="">any</option>${classes.map((c) => `<option>${esc(c)}</option>`).join("")}</select></label>
        <label>stability ≥ <input type="number" id="min-stability" min="0" max="1" step="0.05" value="0"></label>
        <label>matched on other datasets <select id="matched" ${compared ? "" : 'disabled title="only first replicates are compared across datasets"'}><option value="">any</option><option value="yes">Jaccard ≥ 0.5</option><option value="no">Jaccard &lt; 0.5 or no member clustered there</option></select></label>
      </div>
      <p class="count" id="count"></p><div id="list"></div>`;
    const state = { sort: "active_tokens", desc: true };
    const columns = [
      { key: "cluster", label: "cluster", num: true, render: (r) => `<a class="cluster-link" href="${clusterHref(key, r.cluster)}">${r.cluster}</a>` },
      { key: "size", label: "features", num: true },
      { key: "active_tokens", label: "active tokens", num: true },
      { key: "firing_rate", label: "firing rate", num: true, render: (r) => pct(r.firing_rate) },
      { key: "kind", label: "kind", render: (r) => esc(r.kind) },
      { key: "token_class", label: "token class", render: (r) => esc(r.token_class) },
      { key: "stability", label: "stability (replicates)", num: true },
      { key: "matched", label: "best match elsewhere", num: true },
      { key: "top_tokens", label: "top tokens", render: (r) => `<span class="top-tokens">${r.top_tokens.map((t) => `<code>${esc(tokenText(t))}</code>`).join(" ")}</span>` },
    ];
    const value = (id) => document.getElementById(id).value;
    function render() {
      const q = value("search").trim().toLowerCase();
      const minSize = Number(value("min-size")) || 1, minStability = Number(value("min-stability")) || 0;
      const kind = value("kind"), cls = value("token-class"), matched = value("matched");
      let rows = data.rows.filter((r) => {
        if (r.size < minSize || (kind && r.kind !== kind) || (cls && r.token_class !== cls)) return false;
        if (minStability > 0 && !(r.stability >= minStability)) return false;
        if (matched === "yes" && !(r.matched >= 0.5)) return false;
        if (matched === "no" && r.matched !== null && r.matched >= 0.5) return false;
        if (!q) return true;
        return r.top_tokens.some((t) => t.toLowerCase().includes(q)) || (/^\d+$/.test(q) && r.feature_ids.includes(Number(q)));
      });
      const sign = state.desc ? -1 : 1;
      rows = rows.slice().sort((a, b) => {
        const x = a[state.sort], y = b[state.sort];
        if (x === y) return a.cluster - b.cluster;
        if (x === null || x === undefined) return 1;
        if (y === null || y === undefined) return -1;
        return (Array.isArray(x) ? String(x).localeCompare(String(y)) : x < y ? -1 : 1) * sign;
      });
      const shown = rows.slice(0, 500);
      document.getElementById("count").textContent = `${rows.length.toLocaleString("en")} of ${data.rows.length.toLocaleString("en")} clusters` + (rows.length > shown.length ? ` (first ${shown.length} shown)` : "");
      document.getElementById("list").innerHTML = table(columns, shown, { sortable: true, id: "clusters" });
      document.querySelectorAll("#clusters th").forEach((th) => {
        if (th.dataset.key === state.sort) th.classList.add(state.desc ? "sorted-desc" : "sorted-asc");
        th.addEventListener("click", () => {
          state.desc = state.sort === th.dataset.key ? !state.desc : true;
          state.sort = th.dataset.key;
          render();
        });
      });
    }
    ["search", "min-size", "kind", "token-class", "min-stability", "matched"].forEach((id) => document.getElementById(id).addEventListener("input", render));
    render();
  }

  // -- one cluster --------------------------------------------------------------------------------
  async function clusterPage() {
    const key = params.get("p"), given = params.get("c");
    if (!key || !/^\d+$/.test(given || "")) throw new Error("cluster.html needs ?p=<dataset>|<sweep partition>&c=<cluster>");
    const c = Number(given);
    const list = await load("p/" + slug(key) + "/clusters.js");
    if (!list.rows.some((r) => r.cluster === c)) throw new Error(`${key} has ${list.rows.length} clusters: no cluster ${c}`);
    const chunk = await load("p/" + slug(key) + "/detail_" + Math.floor(c / list.chunk) + ".js");
    const d = chunk.clusters[String(c)];
    if (!d) throw new Error(`${key} has no cluster ${c}`);
    crumbs([["partitions", "index.html"], [key, partitionHref(key)], ["cluster " + c]]);
    const peak = Math.max(1e-12, ...d.prompts.flatMap((p) => p.acts.map(([, a]) => a)));
    const prompts = d.prompts
      .map((p) => {
        const acts = new Map(p.acts);  // position -> activation, where the cluster is active
        const toks = (chunk.tokens[String(p.prompt_id)] || []).map((t, i) => {
          const a = acts.get(i) || 0, alpha = a > 0 ? (0.12 + 0.88 * a / peak).toFixed(3) : 0;
          return `<span class="tok" data-act="${a}" data-alpha="${alpha}" title="${a}" style="background: rgba(var(--hot), ${alpha})">${esc(t)}</span>`;
        });
        return `<div class="prompt" data-prompt="${p.prompt_id}"><div class="meta">prompt ${p.prompt_id} · ${p.active_tokens} active tokens</div>${toks.join("")}</div>`;
      })
      .join("");
    const memberColumns = [
      { key: "feature", label: "feature", num: true, render: (m) => (m.link ? `<a href="${esc(m.link)}">${m.feature}</a>` : String(m.feature)) },
      { key: "firing_rate", label: "firing rate", num: true, render: (m) => pct(m.firing_rate) },
      { key: "max", label: "max", num: true },
      { key: "mean", label: "mean", num: true },
      { key: "entropy", label: "entropy over prompts (nats)", num: true },
    ];
    const tree = d.tree
      ? `<p id="formed">${d.tree.formed_from ? `Formed by merging groups of ${d.tree.formed_from[0]} and ${d.tree.formed_from[1]} features (MDL change ${num(d.tree.formed_from[2], 4)} bits/sample).` : "A single feature: no merge formed it."}</p>
         <p id="merged-into">${d.tree.merged_into !== null ? `Above the cut it next merges with ${d.tree.partners_total === 1 ? "cluster" : `${d.tree.partners_total} clusters`} (MDL change ${num(d.tree.merged_into, 4)} bits/sample): <span class="chips">${d.tree.partners.map((o) => `<a href="${clusterHref(key, o)}">cluster ${o}</a>`).join("")}</span>${d.tree.partners_total > d.tree.partners.length ? " …" : ""}` : "It takes part in no later merge."}</p>`
      : `<p class="muted">Fixed labels (${esc(list.method)}): there is no merge tree.</p>`;
    const matchRows = Object.entries(d.matches).map(([other, m]) => ({ where: "dataset " + other, ...m }));
    const replicaRows = Object.entries(d.replicates).map(([, m]) => ({ where: "replicate " + m.partition.split("|")[1], ...m }));
    const matchTable = table(
      [
        { key: "where", label: "on", render: (m) => esc(m.where) },
        { key: "cluster", label: "best match", render: (m) => `<a class="match-link" href="${clusterHref(m.partition, m.cluster)}">${esc(m.partition)} · cluster ${m.cluster}</a>` },
        { key: "jaccard", label: "Jaccard of members", num: true },
      ],
      [...matchRows, ...replicaRows],
      { id: "matches" }
    );
    main().innerHTML = `<h1>Cluster ${c} <span class="muted">· ${esc(key)}</span></h1>
      <p><span class="stat"><b>${d.size}</b> features</span><span class="stat"><b>${d.active_tokens.toLocaleString("en")}</b> active tokens (${pct(d.firing_rate)})</span>
      <span class="stat"><b>${d.prompts_active}</b> prompts</span><span class="stat">mean activation <b>${num(d.mean_activation)}</b></span><span class="stat">max <b>${num(d.max_activation)}</b></span><span class="stat">${esc(d.kind || "")}</span></p>
      <div class="grid">
        <div class="card"><h2>Top tokens</h2><div class="chips">${d.top_tokens.map(([t, n]) => `<span><code>${esc(tokenText(t))}</code> ${n}</span>`).join("") || '<span class="muted">none</span>'}</div>
          <h2>Token classes</h2>${classBar(d.classes)}</div>
        <div class="card"><h2>Activity on every dataset</h2><div id="activity" style="height:220px"></div></div>
      </div>
      <h2>Top prompts <span class="muted">(each token shaded by the cluster's summed activation)</span></h2><div id="prompts">${prompts || '<p class="muted">no prompt</p>'}</div>
      <h2>Matches on other datasets and replicates</h2>${matchRows.length + replicaRows.length ? matchTable : '<p class="muted">nothing to match against (compared first replicates only)</p>'}
      <h2>Neighbourhood in the merge tree</h2><div id="tree">${tree}</div>
      <div class="grid"><div class="card"><h2>Members</h2>${table(memberColumns, d.members, { id: "members" })}</div>
      <div class="card"><h2>Co-firing of members (log counts)</h2><div id="heatmap" style="height:420px"></div></div></div>`;
    const activity = Object.entries(d.activity);
    Plotly.newPlot("activity", [{ type: "bar", x: activity.map(([k]) => k), y: activity.map(([, v]) => v), marker: { color: activity.map(([k]) => (k === list.dataset ? "#4f43dd" : "#b9c0cc")) } }],
      { margin: { t: 10, r: 10, b: 40, l: 60 }, yaxis: { title: "firing rate", tickformat: ".2%" } }, { displaylogo: false, responsive: true });
    const f = d.heatmap.features.map(String);
    Plotly.newPlot("heatmap", [{ type: "heatmap", z: d.heatmap.z, x: f, y: f, colorscale: "Viridis" }],
      { margin: { t: 10, r: 10, b: 60, l: 60 }, xaxis: { type: "category" }, yaxis: { type: "category", autorange: "reversed" } }, { displaylogo: false, responsive: true });
  }

  // -- a sweep point's comparison -----------------------------------------------------------------
  async function comparisonPage() {
    const point = params.get("point");
    if (!point) throw new Error("comparison.html needs ?point=<sweep point>");
    const data = await load("c/" + checked(point, "sweep point") + ".js");
    crumbs([["partitions", "index.html"], ["comparison " + point]]);
    const link = (dataset, c) => (c === null || c === undefined ? "—" : `<a class="cluster-link" href="${clusterHref(dataset + "|" + point, c)}">${esc(dataset)} · ${c}</a>`);
    const others = [...new Set(data.stable.flatMap((r) => Object.keys(r).filter((k) => k.startsWith("cluster[")).map((k) => k.slice(8, -1))))];
    const stableColumns = [
      { key: "cluster", label: "reference cluster", render: (r) => link(r.reference, r.cluster) },
      { key: "size", label: "features", num: true },
      ...others.flatMap((o) => [
        { key: `cluster[${o}]`, label: `on ${o}`, render: (r) => link(o, r[`cluster[${o}]`]) },
        { key: `jaccard[${o}]`, label: "Jaccard", num: true },
      ]),
      { key: "top", label: "top tokens", render: (r) => tokens(r[`top_tokens[${r.reference}]`]) },
    ];
    const specificColumns = [
      { key: "name", label: "cluster", render: (r) => link(r.name, r.cluster) },
      { key: "size", label: "features", num: true },
      { key: "best_jaccard", label: "best Jaccard elsewhere", num: true },
      { key: "top_tokens", label: "top tokens", render: (r) => tokens(r.top_tokens) },
    ];
    const names = [...new Set(data.specific.map((r) => r.name))];
    main().innerHTML = `<h1>${esc(point)}: clusters across datasets</h1>
      <p class="muted">Compared: ${data.partitions.map((k) => `<a href="${partitionHref(k)}">${esc(k)}</a>`).join(", ")}.</p>
      <div class="grid">
        <div><h2>Stable clusters (matched on every dataset)</h2>${data.stable.length ? table(stableColumns, data.stable, { id: "stable" }) : '<p class="muted">none</p>'}</div>
        <div><h2>Dataset-specific clusters</h2>${names.map((n) => `<h3>${esc(n)}</h3>` + table(specificColumns, data.specific.filter((r) => r.name === n).slice(0, 100), { id: "specific-" + n })).join("") || '<p class="muted">none</p>'}</div>
      </div>`;
  }

  const pages = { index: indexPage, partition: partitionPage, cluster: clusterPage, comparison: comparisonPage };
  window.addEventListener("DOMContentLoaded", () => {
    const page = pages[document.body.dataset.page];
    Promise.resolve()
      .then(page)
      .then(() => document.body.setAttribute("data-ready", "true"))
      .catch((error) => {
        fail(error);
        document.body.setAttribute("data-ready", "error");
      });
  });
  return { receive, load };
})();
