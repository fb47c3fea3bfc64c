(function () {
  var DATA = JSON.parse(document.getElementById('ep-data').textContent);
  var FIGS = JSON.parse(document.getElementById('ep-figs').textContent);
  var CONFIG = { displaylogo: false, responsive: true };
  var ROWS = {}; DATA.rows.forEach(function (r) { ROWS[r.key] = r; });
  var STATUS_ORDER = { done: 0, running: 1, pending: 2, cancelled: 3, failed: 4 };

  function fmt(v, type) {
    if (v === null || v === undefined || v === '') return '';
    switch (type) {
      case 'pct': return (100 * v).toFixed(2);
      case 'signed': return (v >= 0 ? '+' : '−') + Math.abs(100 * v).toFixed(2);
      case 'drop': return fmt(-v, 'signed');   // an accuracy drop, shown as the change
      case 'int': return Math.round(v).toLocaleString('en-US');
      case 'mega': return (v / 1e6).toFixed(2);
      case 'kb': return Math.round(v / 1000).toLocaleString('en-US');   // kB: SI, as everywhere in edgeprune
      case 'f1': return Number(v).toFixed(1);
      case 'f3': return Number(v).toFixed(3);
      case 'id': return String(v).slice(0, 8);
      case 'error': { var s = String(v).split('\n')[0]; return s.length > 90 ? s.slice(0, 90) + '…' : s; }
      default: return String(v);
    }
  }
  function esc(s) { return String(s).replace(/[&<>"']/g, function (c) { return { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[c]; }); }

  // ---- the trials table -----------------------------------------------------------------------------
  var table = document.getElementById('ep-table');
  var sortKey = null, sortDir = 1, selectedKey = null;
  var thead = table.querySelector('thead'), tbody = table.querySelector('tbody');
  var headRow = document.createElement('tr');
  DATA.columns.forEach(function (c) {
    var th = document.createElement('th'); th.textContent = c.label; th.title = c.title || '';
    th.className = (c.type === 'text' || c.type === 'status' || c.type === 'id' || c.type === 'error') ? 'text' : '';
    th.addEventListener('click', function () {
      if (sortKey === c.key) sortDir = -sortDir; else { sortKey = c.key; sortDir = 1; }
      Array.prototype.forEach.call(headRow.children, function (h) { h.classList.remove('sorted-asc', 'sorted-desc'); });
      th.classList.add(sortDir > 0 ? 'sorted-asc' : 'sorted-desc'); renderTable();
    });
    headRow.appendChild(th);
  });
  thead.appendChild(headRow);
  var selects = {};
  var selHolder = document.getElementById('ep-selects');
  DATA.filters.forEach(function (f) {
    var values = Array.from(new Set(DATA.rows.map(function (r) { return r[f]; }))).sort();
    var sel = document.createElement('select'); sel.id = 'ep-filter-' + f;
    sel.innerHTML = '<option value="">all ' + (f === 'status' ? 'statuses' : f + 's') + '</option>' + values.map(function (v) { return '<option>' + esc(v) + '</option>'; }).join('');
    sel.addEventListener('change', renderTable); selHolder.appendChild(sel); selects[f] = sel;
  });
  var TEXT_COLS = ['run', 'model', 'algorithm', 'rate_label', 'status', 'trial_id', 'name', 'pareto'];
  var search = document.getElementById('ep-search'), failedOnly = document.getElementById('ep-failed');
  search.addEventListener('input', renderTable); failedOnly.addEventListener('change', renderTable);

  function cmp(a, b) {
    var x = a[sortKey], y = b[sortKey];
    if (sortKey === 'status') { x = STATUS_ORDER[x]; y = STATUS_ORDER[y]; }
    var xn = (x === null || x === undefined || x === ''), yn = (y === null || y === undefined || y === '');
    if (xn || yn) return xn === yn ? 0 : (xn ? 1 : -1);           // empty cells last, either way
    if (typeof x === 'number' && typeof y === 'number') return sortDir * (x - y);
    return sortDir * String(x).localeCompare(String(y), undefined, { numeric: true });
  }
  function renderTable() {
    var words = search.value.toLowerCase().split(/\s+/).filter(Boolean);
    var rows = DATA.rows.filter(function (r) {
      for (var f in selects) if (selects[f].value && String(r[f]) !== selects[f].value) return false;
      if (failedOnly.checked && r.status !== 'failed') return false;
      if (!words.length) return true;
      // a word matches the start of a word of the row's names (model, algorithm, rate, status, trial id...)
      // or any part of its error
      var tokens = TEXT_COLS.map(function (k) { return r[k] === null || r[k] === undefined ? '' : String(r[k]); })
        .join(' ').toLowerCase().split(/\s+/);
      var err = (r.error || '').toLowerCase();
      return words.every(function (w) {
        return err.indexOf(w) >= 0 || tokens.some(function (t) { return t.indexOf(w) === 0; });
      });
    });
    if (sortKey) rows = rows.slice().sort(cmp);
    var out = [];
    rows.forEach(function (r) {
      out.push('<tr data-key="' + esc(r.key) + '"' + (r.key === selectedKey ? ' class="selected"' : '') + '>');
      DATA.columns.forEach(function (c) {
        var cls = c.type === 'status' ? 'status st-' + r.status : c.type;
        var title = c.type === 'error' && r.error ? ' title="' + esc(r.error) + '"' : (c.type === 'id' ? ' title="' + esc(r.trial_id) + '"' : '');
        out.push('<td class="' + cls + '"' + title + '>' + esc(fmt(r[c.key], c.type)) + '</td>');
      });
      out.push('</tr>');
    });
    tbody.innerHTML = out.join('');
    document.getElementById('ep-count').textContent = 'showing ' + rows.length + ' of ' + DATA.rows.length + ' trials';
  }
  tbody.addEventListener('click', function (e) {
    var tr = e.target.closest('tr'); if (tr) showTrial(tr.getAttribute('data-key'), true);
  });
  document.querySelectorAll('tr.pick').forEach(function (tr) {
    tr.addEventListener('click', function () { showTrial(tr.getAttribute('data-key'), true); });
  });

  // ---- one trial: details and channels per layer -----------------------------------------------------
  var trialSel = document.getElementById('ep-trial');
  var layerKeys = DATA.rows.filter(function (r) { return DATA.layers[r.key]; }).map(function (r) { return r.key; });
  var otherKeys = DATA.rows.filter(function (r) { return !DATA.layers[r.key]; }).map(function (r) { return r.key; });
  function opt(k) { var r = ROWS[k]; return '<option value="' + esc(k) + '">' + esc(r.name + (r.status !== 'done' ? ' [' + r.status + ']' : '')) + '</option>'; }
  trialSel.innerHTML = (layerKeys.length ? '<optgroup label="pruned trials">' + layerKeys.map(opt).join('') + '</optgroup>' : '') +
    (otherKeys.length ? '<optgroup label="without per-layer channels">' + otherKeys.map(opt).join('') + '</optgroup>' : '');
  trialSel.addEventListener('change', function () { showTrial(trialSel.value, false); });

  function showTrial(key, scroll) {
    var r = ROWS[key]; if (!r) return;
    selectedKey = key; trialSel.value = key;
    tbody.querySelectorAll('tr.selected').forEach(function (tr) { tr.classList.remove('selected'); });
    var tr = tbody.querySelector('tr[data-key="' + CSS.escape(key) + '"]'); if (tr) tr.classList.add('selected');
    var bits = ['<b>' + esc(r.name) + '</b>', 'status ' + esc(r.status), 'trial ' + esc(r.trial_id)];
    if (r.accuracy !== null) bits.push('accuracy ' + fmt(r.accuracy, 'pct') + '% (' + fmt(r.accuracy_drop, 'drop') + ' pt vs baseline; right after pruning ' + fmt(r.accuracy_pruned, 'pct') + '%)');
    if (r.params !== null) bits.push(fmt(r.params, 'int') + ' params (−' + fmt(r.param_reduction, 'pct') + '%)');
    if (r.macs !== null) bits.push(fmt(r.macs, 'mega') + ' M MACs (−' + fmt(r.mac_reduction, 'pct') + '%)');
    if (r.latency_ms !== null && r.latency_ms !== undefined) bits.push(fmt(r.latency_ms, 'f3') + ' ms');
    if (r.channel_ratio !== null && r.channel_ratio !== undefined) bits.push(fmt(r.channel_ratio, 'pct') + '% of targeted channels removed');
    var html = bits.join(' · ');
    if (r.error) html += '<pre>' + esc(r.error) + '</pre>';
    document.getElementById('ep-detail').innerHTML = html;
    var L = DATA.layers[key], chart = document.getElementById('ep-layer-chart');
    if (!L) {
      Plotly.react(chart, [], { height: 140, template: 'plotly_white', xaxis: { visible: false }, yaxis: { visible: false },
        annotations: [{ text: r.algorithm === 'none' ? 'the unpruned baseline: nothing was removed' : 'no per-layer channels recorded for this trial (' + r.status + ')',
          showarrow: false, xref: 'paper', yref: 'paper', x: 0.5, y: 0.5, font: { color: '#777', size: 14 } }] }, CONFIG);
    } else {
      var names = DATA.layer_names[L.model];
      var kept = L.after.map(function (a, i) { return L.before[i] ? a / L.before[i] : null; });
      var color = DATA.colors[r.algorithm] || '#1f77b4';
      Plotly.react(chart, [
        { type: 'bar', x: names, y: L.before, name: 'before', marker: { color: '#d1d5db' }, hovertemplate: '%{x}: %{y} channels before<extra></extra>' },
        { type: 'bar', x: names, y: L.after, name: 'kept', marker: { color: color }, customdata: kept,
          hovertemplate: '%{x}: %{y} kept (%{customdata:.0%})<extra></extra>' }],
        { barmode: 'overlay', height: 380, template: 'plotly_white', margin: { l: 60, r: 20, t: 40, b: 120 },
          title: { text: esc(r.name) + ': output channels per layer', font: { size: 14 } },
          xaxis: { tickangle: -60, tickfont: { size: 9 } }, yaxis: { title: { text: 'output channels' } }, bargap: 0.15 }, CONFIG);
    }
    if (scroll) document.getElementById('channels').scrollIntoView({ behavior: 'smooth', block: 'start' });
  }

  // ---- figures ------------------------------------------------------------------------------------------
  var drawn = FIGS.map(function (f) {
    var el = document.getElementById(f.id); if (!el) return Promise.resolve();
    return Plotly.newPlot(el, f.fig.data || [], f.fig.layout || {}, CONFIG).then(function (gd) {
      gd.on('plotly_click', function (ev) {
        var p = ev && ev.points && ev.points[0]; if (!p || p.customdata === undefined) return;
        var k = Array.isArray(p.customdata) ? p.customdata[0] : p.customdata;
        if (ROWS[k]) showTrial(k, true);
      });
    });
  });
  renderTable();
  var first = layerKeys.find(function (k) { return ROWS[k].status === 'done'; }) || layerKeys[0] || (DATA.rows[0] && DATA.rows[0].key);
  if (first) showTrial(first, false);
  Promise.all(drawn).then(finish, function (e) { console.error('drawing failed: ' + (e && e.message || e)); finish(); });
  function finish() {
    var plots = document.querySelectorAll('.fig'), ok = 0;
    plots.forEach(function (d) { if (d.querySelector('.main-svg')) ok++; });
    document.body.setAttribute('data-figures', String(plots.length));
    document.body.setAttribute('data-figures-drawn', String(ok));
    document.body.setAttribute('data-table-rows', String(tbody.children.length));
    document.body.setAttribute('data-report-ready', window.__epErrors.length ? 'errors' : 'ok');
  }
})();
