// rbee-hive page: the catalog, a download form and live progress, driven by the daemon's API.
//
// Event streams are read with fetch() rather than EventSource, because EventSource cannot send
// the `Authorization` header a daemon with a token requires. All text from the daemon is put in
// the page with textContent, never as HTML.
'use strict';

(() => {
  const TOKEN_KEY = 'rbee-hive.token';
  // Finished downloads older than this are not shown when the page loads.
  const RECENT_MS = 15 * 60 * 1000;
  const FINAL = new Set(['done', 'failed', 'cancelled']);
  // Finished cards shown at most (newest kept), so the catalog stays in view.
  const MAX_FINISHED_CARDS = 3;
  // What the daemon puts in place of a credential in a URL it records or shows.
  const STATE_LABEL = {
    queued: 'queued',
    running: 'downloading',
    paused: 'paused',
    done: 'ready',
    failed: 'failed',
    cancelled: 'cancelled',
  };
  const VENDOR_LABEL = { hf: 'HuggingFace', gh: 'GitHub release', url: 'URL', file: 'local file' };

  const $ = (id) => document.getElementById(id);
  const el = (tag, props, ...children) => {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(props || {})) {
      if (key === 'class') node.className = value;
      else if (key === 'text') node.textContent = value;
      else if (key.startsWith('data-') || key.startsWith('aria-') || key === 'role') node.setAttribute(key, value);
      else node[key] = value;
    }
    for (const child of children) if (child != null) node.append(child);
    return node;
  };

  const page = {
    token: sessionStorage.getItem(TOKEN_KEY),
    needToken: false,
    jobs: new Map(), // job id → download job
    dismissed: new Set(),
    models: [],
    rows: new Map(), // catalog id → row parts
    feed: null, // AbortController of the download feed
    retryMs: 1000,
    catalogTimer: 0,
  };

  // ---------------------------------------------------------------------------------------
  // Talking to the daemon

  class ApiError extends Error {
    constructor(status, code, message) {
      super(message);
      this.status = status;
      this.code = code;
    }
  }

  function headers(extra) {
    const h = Object.assign({}, extra);
    if (page.token) h.Authorization = `Bearer ${page.token}`;
    return h;
  }

  const unreachable = () =>
    new ApiError(0, 'unreachable', 'rbee-hive did not answer (is it still running?)');

  async function readBody(response) {
    const text = await response.text().catch(() => '');
    if (!text) return null;
    try {
      return JSON.parse(text);
    } catch {
      return { text };
    }
  }

  function errorOf(response, body) {
    const e = body && body.error;
    const error = new ApiError(
      response.status,
      (e && e.code) || `http_${response.status}`,
      (e && e.message) || `rbee-hive answered ${response.status} ${response.statusText}`.trim(),
    );
    if (response.status === 401) askForToken();
    return error;
  }

  async function api(method, path, body) {
    const init = { method, cache: 'no-store', headers: headers({ Accept: 'application/json' }) };
    if (body !== undefined) {
      init.headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(path, init);
    } catch {
      throw unreachable();
    }
    const data = await readBody(response);
    if (!response.ok) throw errorOf(response, data);
    return data;
  }

  // Reads a Server-Sent Events response; calls `onEvent(name, data)` per event. Resolves when
  // the stream ends, rejects when it cannot be opened or breaks.
  async function readEvents(path, signal, onEvent, onOpen) {
    let response;
    try {
      response = await fetch(path, { cache: 'no-store', signal, headers: headers({ Accept: 'text/event-stream' }) });
    } catch (e) {
      if (signal.aborted) throw e;
      throw unreachable();
    }
    if (!response.ok) throw errorOf(response, await readBody(response));
    if (onOpen) onOpen();
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = '';
    for (;;) {
      let chunk;
      try {
        chunk = await reader.read();
      } catch (e) {
        if (signal.aborted) throw e;
        throw new ApiError(0, 'disconnected', 'the connection to rbee-hive was lost');
      }
      if (chunk.done) return;
      buffer += chunk.value.replace(/\r\n?/g, '\n');
      let end;
      while ((end = buffer.indexOf('\n\n')) >= 0) {
        const event = parseEvent(buffer.slice(0, end));
        buffer = buffer.slice(end + 2);
        if (event) onEvent(event.name, event.data);
      }
    }
  }

  function parseEvent(block) {
    let name = 'message';
    const data = [];
    for (const line of block.split('\n')) {
      if (!line || line.startsWith(':')) continue; // comments: keep-alives, skipped events
      const colon = line.indexOf(':');
      const field = colon < 0 ? line : line.slice(0, colon);
      let value = colon < 0 ? '' : line.slice(colon + 1);
      if (value.startsWith(' ')) value = value.slice(1);
      if (field === 'event') name = value;
      else if (field === 'data') data.push(value);
    }
    if (!data.length) return null;
    try {
      return { name, data: JSON.parse(data.join('\n')) };
    } catch {
      return { name, data: { message: data.join('\n') } };
    }
  }

  // ---------------------------------------------------------------------------------------
  // Formatting

  function bytes(n) {
    if (n == null || !Number.isFinite(n)) return '—';
    const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    let i = 0;
    let v = n;
    while (v >= 1024 && i < units.length - 1) {
      v /= 1024;
      i += 1;
    }
    return i === 0 ? `${v} B` : `${v.toFixed(1)} ${units[i]}`;
  }

  // Text that may wrap after separators (`/`, `:`, `-`, `_`, `.`, `?`, `&`, `=`) rather than
  // inside a word: long references, ids and paths.
  function breakable(node, text) {
    const pieces = String(text).split(/(?<=[/:\-_.?&=])/);
    node.replaceChildren(...pieces.flatMap((piece, i) => (i < pieces.length - 1 ? [piece, el('wbr')] : [piece])));
  }

  function duration(secs) {
    if (secs == null || !Number.isFinite(secs)) return '';
    const s = Math.max(0, Math.round(secs));
    if (s < 60) return `${s} s`;
    if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
    return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
  }

  function percentOf(p) {
    if (!p) return null;
    if (p.percent != null) return Math.max(0, Math.min(100, p.percent));
    if (p.total > 0) return Math.max(0, Math.min(100, (100 * p.bytes) / p.total));
    return null;
  }

  function announce(text) {
    const node = $('announcer');
    node.textContent = '';
    // A fresh text node after a tick is what screen readers reliably pick up.
    setTimeout(() => {
      node.textContent = text;
    }, 50);
  }

  // ---------------------------------------------------------------------------------------
  // The access token

  // Shows the token prompt. Called on every 401: when a token was sent, it was the wrong one.
  function askForToken() {
    const rejected = Boolean(page.token);
    if (rejected) {
      page.token = null;
      sessionStorage.removeItem(TOKEN_KEY);
    }
    const input = $('token-input');
    if (rejected || !page.needToken) {
      $('token-error').textContent = rejected
        ? 'That access token was not accepted. Check it (it is the one rbee-hive was started with) and enter it again.'
        : '';
      input.setAttribute('aria-invalid', String(rejected));
    }
    if (page.needToken) {
      if (rejected) input.focus();
      return;
    }
    page.needToken = true;
    if (page.feed) page.feed.abort();
    page.feed = null;
    $('app').hidden = true;
    $('token-panel').hidden = false;
    $('forget-token').hidden = true;
    setConnection('lost', 'Access token needed');
    input.focus();
  }

  async function onTokenSubmit(event) {
    event.preventDefault();
    const input = $('token-input');
    const value = input.value.trim();
    if (!value) {
      $('token-error').textContent = 'Enter the access token first.';
      input.setAttribute('aria-invalid', 'true');
      input.focus();
      return;
    }
    page.token = value;
    $('token-button').disabled = true;
    try {
      // Any guarded route tells whether the token is right; a wrong one calls askForToken().
      await api('GET', '/v1/models');
      sessionStorage.setItem(TOKEN_KEY, value);
      input.value = '';
      input.removeAttribute('aria-invalid');
      $('token-error').textContent = '';
      page.needToken = false;
      $('token-panel').hidden = true;
      $('app').hidden = false;
      $('forget-token').hidden = false;
      announce('Token accepted');
      start();
    } catch (e) {
      if (e.status !== 401) $('token-error').textContent = e.message;
    } finally {
      $('token-button').disabled = false;
    }
  }

  function forgetToken() {
    page.token = null;
    sessionStorage.removeItem(TOKEN_KEY);
    askForToken();
  }

  // ---------------------------------------------------------------------------------------
  // Connection status and the download feed

  function setConnection(state, text) {
    const node = $('connection');
    node.dataset.state = state;
    node.textContent = text;
  }

  function connectFeed() {
    if (page.feed) page.feed.abort();
    const controller = new AbortController();
    page.feed = controller;
    const opened = () => {
      setConnection('live', 'Live');
      page.retryMs = 1000;
      // Whatever changed while the feed was down (a download that finished meanwhile).
      loadJobs().catch(() => {});
    };
    readEvents('/v1/models/download/progress', controller.signal, onFeedEvent, opened)
      .then(() => {
        if (!controller.signal.aborted) retryFeed(controller, 'rbee-hive closed the event stream (is it stopping?)');
      })
      .catch((e) => {
        if (!controller.signal.aborted && e.status !== 401) retryFeed(controller, e.message);
      });
  }

  function retryFeed(controller, why) {
    const wait = page.retryMs;
    page.retryMs = Math.min(wait * 2, 15000);
    setConnection('lost', `Disconnected: ${why.replace(/\.$/, '')}; retrying in ${Math.round(wait / 1000)} s…`);
    setTimeout(() => {
      if (page.feed !== controller || page.needToken) return;
      loadCatalog().catch(() => {});
      connectFeed();
    }, wait);
  }

  function onFeedEvent(name, data) {
    const id = data.download_id || data.job_id;
    if (!id || page.dismissed.has(id)) return;
    const job = jobFor(id, data.model);
    switch (name) {
      case 'queued':
        if (!setState(job, 'queued')) return;
        job.queuePosition = data.position;
        job.message = data.message || '';
        break;
      case 'started':
        if (!setState(job, 'running')) return;
        job.started = true;
        job.progress = Object.assign({}, job.progress, { total: data.total_bytes });
        job.message = data.message || '';
        scheduleCatalog();
        break;
      case 'progress':
        // Heartbeats also come while a download waits for a slot, or from a paused attempt.
        if (data.event === 'heartbeat' && (job.state === 'queued' || job.state === 'paused')) return;
        if (!setState(job, 'running')) return;
        job.progress = {
          bytes: data.bytes,
          total: data.total,
          percent: data.percent,
          bytes_per_sec: data.bytes_per_sec,
          eta_secs: data.eta_secs,
        };
        break;
      case 'paused':
        if (!setState(job, 'paused')) return;
        job.message = data.message || 'Paused; partial files kept';
        scheduleCatalog();
        break;
      case 'complete':
        if (!setState(job, 'done')) return;
        job.catalogId = data.id;
        // Ready without a transfer: nothing was fetched.
        job.alreadyPresent = !job.started;
        job.progress = Object.assign({}, job.progress, { bytes: data.bytes, total: data.bytes, percent: 100, eta_secs: null });
        job.message = data.message || 'Ready';
        announce(`${job.model} is ready`);
        scheduleCatalog();
        break;
      case 'error':
        if (!setState(job, 'failed')) return;
        job.message = data.error || data.message || 'The download failed';
        announce(`Download of ${job.model} failed: ${job.message}`);
        scheduleCatalog();
        break;
      case 'cancelled':
        if (!setState(job, 'cancelled')) return;
        job.message = data.message || 'Cancelled; partial files kept for a later download';
        announce(`Download of ${job.model} cancelled`);
        scheduleCatalog();
        break;
      default:
        return;
    }
    renderJob(job);
  }

  // ---------------------------------------------------------------------------------------
  // Downloads

  function jobFor(id, model) {
    let job = page.jobs.get(id);
    if (!job) {
      job = { id, model: model || id, state: 'queued', progress: null, message: '', queuePosition: null, createdMs: Date.now() };
      page.jobs.set(id, job);
    } else if (model) {
      job.model = model;
    }
    return job;
  }

  // A finished download stays finished; stale news (an old job list, a late event) cannot
  // bring it back. Returns whether the state was taken.
  function setState(job, state) {
    if (FINAL.has(job.state) && job.state !== state) return false;
    if (FINAL.has(state) && !FINAL.has(job.state)) job.finishedMs = Date.now();
    job.state = state;
    if (state !== 'queued') job.queuePosition = null;
    return true;
  }

  function fromView(view) {
    if (view.operation !== 'model_download' || page.dismissed.has(view.job_id)) return;
    const known = page.jobs.has(view.job_id);
    if (!known && FINAL.has(view.state) && Date.now() - view.updated_at_ms > RECENT_MS) return;
    const job = jobFor(view.job_id, view.model);
    if (!known) job.createdMs = view.created_at_ms;
    if (!setState(job, view.state)) return;
    if (view.progress) job.progress = view.progress;
    if (view.queue_position != null) job.queuePosition = view.queue_position;
    if (view.error) job.message = view.error.message;
    else if (view.state === 'done' && view.result) job.message = `Ready: ${view.result.id}`;
    else if (view.state === 'cancelled') job.message = 'Cancelled; partial files kept for a later download';
    if (view.state === 'done' && !known) job.alreadyPresent = !(view.progress && view.progress.total > 0);
    renderJob(job);
  }

  async function loadJobs() {
    const data = await api('GET', '/v1/jobs');
    const views = (data.jobs || []).slice().sort((a, b) => a.created_at_ms - b.created_at_ms);
    for (const view of views) fromView(view);
  }

  function renderJob(job) {
    let card = job.card;
    if (!card) {
      card = buildCard(job);
      job.card = card;
      // Newest first.
      $('jobs').prepend(card.root);
    }
    const stateLabel = STATE_LABEL[job.state] || job.state;
    card.root.dataset.state = job.state;
    if (card.model.textContent !== job.model) {
      breakable(card.model, job.model);
      labelCard(card, job);
    }
    card.badge.textContent = stateLabel;
    card.badge.dataset.state = job.state;

    const p = job.alreadyPresent ? null : job.progress;
    const pct = job.state === 'done' ? 100 : percentOf(p);
    const shown = pct == null ? 0 : pct;
    card.fill.style.width = `${shown.toFixed(1)}%`;
    card.bar.setAttribute('aria-valuenow', shown.toFixed(1));
    const have = p && p.total ? `${bytes(p.bytes)} of ${bytes(p.total)}` : p ? bytes(p.bytes) : '';
    card.bar.setAttribute('aria-valuetext', pct == null ? stateLabel : `${Math.floor(pct)}%${have ? `, ${have}` : ''}`);
    card.pct.textContent = pct == null || job.alreadyPresent ? '' : `${pct >= 99.95 ? '100' : pct.toFixed(1)}%`;
    card.bytes.textContent = job.alreadyPresent ? 'already present' : have;
    if (job.alreadyPresent) card.bar.setAttribute('aria-valuetext', 'already present, nothing fetched');
    const running = job.state === 'running';
    card.speed.textContent = running && p && p.bytes_per_sec > 0 ? `${bytes(p.bytes_per_sec)}/s` : '';
    card.eta.textContent = running && p && p.eta_secs != null ? `${duration(p.eta_secs)} left` : '';

    let message = job.message;
    if (job.state === 'queued') {
      message = job.queuePosition ? `Waiting for a download slot (${job.queuePosition} ahead)` : 'Waiting for a download slot';
    } else if (running && !message) {
      message = 'Downloading';
    } else if (job.alreadyPresent) {
      message = 'Already present: nothing to download';
    }
    card.message.textContent = message || '';

    const final = FINAL.has(job.state);
    card.cancel.hidden = final;
    card.pause.hidden = job.state !== 'running';
    card.resume.hidden = job.state !== 'paused';
    card.dismiss.hidden = !final;
    // A finished card shrinks to its head and message.
    card.root.classList.toggle('collapsed', final);
    if (final) trimFinished();
    updateJobsEmpty();
    refreshRowProgress();
  }

  // Keeps the newest few finished cards; older ones go, as if dismissed.
  function trimFinished() {
    const finished = [...page.jobs.values()]
      .filter((j) => FINAL.has(j.state) && j.card)
      .sort((a, b) => (b.finishedMs || 0) - (a.finishedMs || 0) || b.createdMs - a.createdMs);
    for (const job of finished.slice(MAX_FINISHED_CARDS)) removeCard(job);
  }

  function removeCard(job) {
    page.dismissed.add(job.id);
    page.jobs.delete(job.id);
    if (job.card) job.card.root.remove();
  }

  // A cancelled or failed card whose model is now ready (downloaded by another job or
  // another tool) is news no longer.
  function dropStaleCards(models) {
    const ready = new Set(models.filter((m) => m.status && m.status.state === 'ready').map((m) => m.reference));
    for (const job of [...page.jobs.values()]) {
      if ((job.state === 'cancelled' || job.state === 'failed') && ready.has(job.model)) removeCard(job);
    }
    updateJobsEmpty();
  }

  function buildCard(job) {
    const model = el('span', { class: 'job-model' });
    const badge = el('span', { class: 'badge' });
    const fill = el('div', { class: 'bar-fill' });
    const bar = el('div', { class: 'bar', role: 'progressbar', 'aria-valuemin': '0', 'aria-valuemax': '100' }, fill);
    const pct = el('span', { class: 'pct' });
    const bytesNode = el('span', { class: 'bytes' });
    const speed = el('span', { class: 'speed' });
    const eta = el('span', { class: 'eta' });
    const message = el('p', { class: 'job-message' });
    const button = (text, action, cls) =>
      el('button', { type: 'button', text, class: cls || '', onclick: () => jobAction(job, action) });
    const cancel = button('Cancel', 'cancel', 'danger');
    const pause = button('Pause', 'pause');
    const resume = button('Resume', 'resume');
    const dismiss = button('Dismiss', 'dismiss', 'quiet');
    const actionError = el('p', { class: 'job-message error', role: 'alert' });
    const root = el(
      'li',
      { class: 'job', 'data-job-id': job.id },
      el('div', { class: 'job-head' }, model, badge),
      bar,
      el(
        'div',
        { class: 'job-foot' },
        el('div', { class: 'job-stats' }, pct, bytesNode, speed, eta),
        el('div', { class: 'actions' }, cancel, pause, resume, dismiss),
      ),
      message,
      actionError,
    );
    return { root, model, badge, bar, fill, pct, bytes: bytesNode, speed, eta, message, cancel, pause, resume, dismiss, actionError };
  }

  function labelCard(card, job) {
    card.bar.setAttribute('aria-label', `Progress of ${job.model}`);
    card.cancel.setAttribute('aria-label', `Cancel download of ${job.model}`);
    card.pause.setAttribute('aria-label', `Pause download of ${job.model}`);
    card.resume.setAttribute('aria-label', `Resume download of ${job.model}`);
    card.dismiss.setAttribute('aria-label', `Dismiss ${job.model}`);
  }

  async function jobAction(job, action) {
    const card = job.card;
    card.actionError.textContent = '';
    if (action === 'dismiss') {
      const next = card.root.nextElementSibling || card.root.previousElementSibling;
      removeCard(job);
      updateJobsEmpty();
      (next ? next.querySelector('button:not([hidden])') : $('download-title')).focus();
      return;
    }
    const buttons = [card.cancel, card.pause, card.resume];
    buttons.forEach((b) => (b.disabled = true));
    try {
      const view = await api('POST', `/v1/jobs/${encodeURIComponent(job.id)}/${action}`);
      fromView(view);
      scheduleCatalog();
    } catch (e) {
      if (e.status !== 401) card.actionError.textContent = `Could not ${action} the download: ${e.message}`;
    } finally {
      buttons.forEach((b) => (b.disabled = false));
      // Keep keyboard focus on the card when the pressed button disappears.
      if (document.activeElement === document.body || document.activeElement.hidden) {
        const visible = card.root.querySelector('.actions button:not([hidden])');
        if (visible) visible.focus();
      }
    }
  }

  // The tab's title shows overall progress, for a page left in the background.
  function updateTitle() {
    let have = 0;
    let total = 0;
    for (const job of page.jobs.values()) {
      if (job.state !== 'running' || !job.progress || !job.progress.total) continue;
      have += job.progress.bytes || 0;
      total += job.progress.total;
    }
    document.title = total > 0 ? `${Math.floor((100 * have) / total)}% · rbee-hive` : 'rbee-hive';
  }

  function updateJobsEmpty() {
    updateTitle();
    const any = page.jobs.size > 0;
    $('jobs-empty').hidden = any;
    $('clear-finished').hidden = ![...page.jobs.values()].some((j) => FINAL.has(j.state));
  }

  function clearFinished() {
    for (const job of [...page.jobs.values()]) {
      if (FINAL.has(job.state)) removeCard(job);
    }
    updateJobsEmpty();
    $('jobs-title').focus();
  }

  // ---------------------------------------------------------------------------------------
  // The download form

  function fieldError(field, message) {
    const e = new Error(message);
    e.field = field;
    return e;
  }

  // Builds the reference from the form: the quantization and revision fields are added to a
  // HuggingFace reference in its own syntax (hf:ORG/REPO@REVISION:QUANT).
  function composeReference(reference, quant, revision) {
    const ref = reference.trim();
    const q = quant.trim();
    const rev = revision.trim();
    if (!ref) throw fieldError('ref', 'Enter a reference, for example hf:TheBloke/TinyLlama-1.1B-Chat-v1.0-GGUF:Q4_K_M.');
    if (!q && !rev) return ref;
    const extra = q ? 'quant' : 'rev';
    const scheme = /^([A-Za-z][A-Za-z0-9+.-]*):/.exec(ref);
    let body;
    if (!scheme) body = ref.replace(/^(hf\.co|huggingface\.co)\//i, '');
    else if (scheme[1].toLowerCase() === 'hf') body = ref.slice(3);
    else
      throw fieldError(
        extra,
        'Quantization and revision apply to HuggingFace references (hf:ORG/REPO). For other sources write everything in the reference, e.g. gh:OWNER/REPO@TAG/ASSET.',
      );
    const m = /^([^/@:\s]+)\/([^/@:\s]+)(@[^:/\s]+)?(:[^/\s]+)?(\/\S+)?$/.exec(body);
    if (!m)
      throw fieldError('ref', 'The quantization or revision cannot be added to this reference; write them into it instead: hf:ORG/REPO@REVISION:QUANT.');
    const [, org, repo, hasRev, hasQuant, path] = m;
    if (rev && hasRev) throw fieldError('rev', `The reference already names a revision (${hasRev}); empty the Revision field or remove it from the reference.`);
    if (q && hasQuant) throw fieldError('quant', `The reference already names a quantization (${hasQuant}); empty the Quantization field or remove it from the reference.`);
    if (q && path) throw fieldError('quant', 'The reference names a single file, so there is no quantization to choose; empty the Quantization field.');
    if (q && !/^[A-Za-z0-9_.-]+$/.test(q)) throw fieldError('quant', 'A quantization is one word, for example Q4_K_M or Q8_0.');
    if (rev && /[\s:]/.test(rev)) throw fieldError('rev', 'A revision is a branch, tag or commit name without spaces or colons, for example main, v1.0 or a commit sha.');
    // A branch name with `/` is written %2F, except the Hub's refs/pr/N.
    const revPart = rev ? `@${/^refs\/pr\/\d+$/.test(rev) ? rev : rev.replace(/\//g, '%2F')}` : '';
    return `hf:${org}/${repo}${hasRev || ''}${revPart}${hasQuant || ''}${q ? `:${q}` : ''}${path || ''}`;
  }

  const FIELDS = { ref: 'ref-input', quant: 'quant-input', rev: 'rev-input' };

  function showFormError(message, field) {
    $('download-error').textContent = message;
    for (const [name, id] of Object.entries(FIELDS)) {
      if (name === field) $(id).setAttribute('aria-invalid', 'true');
      else $(id).removeAttribute('aria-invalid');
    }
    if (field) $(FIELDS[field]).focus();
  }

  function clearFormError() {
    $('download-error').textContent = '';
    for (const id of Object.values(FIELDS)) $(id).removeAttribute('aria-invalid');
  }

  // Asks the daemon for a download and shows its card at once (the feed fills it in).
  async function startDownload(reference) {
    const answer = await api('POST', '/v1/models/download', { model_ref: reference });
    const job = jobFor(answer.download_id, null);
    if (job.model === job.id) job.model = reference;
    if (!job.card) {
      setState(job, answer.status === 'running' ? 'running' : 'queued');
      renderJob(job);
    }
    announce(`Download of ${reference} started`);
    scheduleCatalog();
    return job;
  }

  async function onDownloadSubmit(event) {
    event.preventDefault();
    clearFormError();
    let reference;
    try {
      reference = composeReference($('ref-input').value, $('quant-input').value, $('rev-input').value);
    } catch (e) {
      showFormError(e.message, e.field);
      return;
    }
    const button = $('download-button');
    button.disabled = true;
    button.textContent = 'Starting…';
    try {
      await startDownload(reference);
      for (const id of Object.values(FIELDS)) $(id).value = '';
    } catch (e) {
      if (e.status !== 401) showFormError(`Could not start the download: ${e.message}`, e.status === 0 ? null : 'ref');
    } finally {
      button.disabled = false;
      button.textContent = 'Download';
    }
  }

  // ---------------------------------------------------------------------------------------
  // What a model is: the summary of its headers, as `rbee model info` / `inspect` show it

  function count(n) {
    if (n == null) return null;
    if (n >= 1e9) return `${(n / 1e9).toFixed(2)} B`;
    if (n >= 1e6) return `${(n / 1e6).toFixed(2)} M`;
    return String(n);
  }

  const deviceTotal = (d) => (d ? d.weights + d.kv_cache + d.compute + d.output : 0);

  // [label, text] pairs of a model report (`summary`, `estimate`, `verdict`); empty ones left out.
  function summaryRows(report) {
    const rows = [];
    const add = (label, value) => {
      if (value != null && value !== '') rows.push([label, String(value)]);
    };
    const s = report.summary || {};
    if (s.format === 'safetensors') {
      const c = s.config || {};
      add('Architecture', c.architecture || c.model_type);
      add('Parameters', count(s.parameters));
      add('Types', (s.dtypes || []).map((d) => `${d.dtype} ×${d.tensors} (${bytes(d.bytes)})`).join(', '));
      add('Context', c.context_length != null ? `${c.context_length} tokens (training)` : null);
      add('Layers', c.layers);
      add('Heads', c.heads != null ? `${c.heads}, KV heads ${c.kv_heads != null ? c.kv_heads : c.heads}` : null);
      add('Tokenizer', c.vocab_size != null ? `${c.vocab_size} tokens` : null);
    } else {
      add('Architecture', s.architecture);
      add('Parameters', s.parameters != null ? `${count(s.parameters)}${s.size_label ? ` (${s.size_label})` : ''}` : null);
      const mix = (s.tensor_types || []).map((t) => `${t.ggml_type} ×${t.tensors}`).join(', ');
      add('Quantization', [s.file_type, mix].filter(Boolean).join(' · '));
      add('Context', s.context_length != null ? `${s.context_length} tokens (training)` : null);
      add('Layers', s.layers);
      add('Heads', s.heads != null ? `${s.heads}${s.kv_heads != null ? `, KV heads ${s.kv_heads}` : ''}` : null);
      const t = s.tokenizer;
      add('Tokenizer', t ? `${t.model || '?'}, ${t.vocab_size} tokens` : null);
      add('Chat template', s.chat_template ? 'yes' : 'no');
    }
    const e = report.estimate;
    if (e) add('Memory', `${bytes(deviceTotal(e.gpu))} on a GPU at ctx ${e.context} (and ${bytes(deviceTotal(e.cpu))} of RAM)`);
    if (report.verdict) add('Fit', report.verdict.line);
    return rows;
  }

  // Shows a model report in `container`: its rows, or why the headers could not be read.
  function renderSummary(container, report) {
    container.replaceChildren();
    if (!report) {
      container.append(el('p', { class: 'muted', text: 'No GGUF or safetensors file to summarise.' }));
      return;
    }
    if (report.error) {
      container.append(el('p', { class: 'bad', text: `Cannot read the headers: ${report.error}` }));
      return;
    }
    const list = el('dl', { class: 'model-summary' });
    for (const [label, value] of summaryRows(report))
      list.append(el('div', { 'data-row': label }, el('dt', { text: label }), el('dd', { text: value })));
    container.append(list);
  }

  // Reads a reference's headers on the daemon (nothing is downloaded) and shows the summary.
  async function onInspect() {
    clearFormError();
    let reference;
    try {
      reference = composeReference($('ref-input').value, $('quant-input').value, $('rev-input').value);
    } catch (e) {
      showFormError(e.message, e.field);
      return;
    }
    const button = $('inspect-button');
    const out = $('inspect-result');
    button.disabled = true;
    button.textContent = 'Reading headers…';
    try {
      const report = await api('POST', '/v1/inspect', { model: reference });
      $('inspect-title').textContent = report.reference || reference;
      renderSummary($('inspect-summary'), report);
      out.hidden = false;
      announce(`Read the headers of ${reference}`);
    } catch (e) {
      // A summary left from an earlier reference would read as this one's.
      out.hidden = true;
      if (e.status !== 401) showFormError(`Could not inspect it: ${e.message}`, e.status === 0 ? null : 'ref');
    } finally {
      button.disabled = false;
      button.textContent = 'Inspect';
    }
  }

  // A catalog entry's summary, read by the daemon from the headers on its disk.
  async function showDetails(row) {
    const open = row.details.getAttribute('aria-expanded') === 'true';
    row.details.setAttribute('aria-expanded', String(!open));
    row.summary.hidden = open;
    if (open) return;
    row.summary.replaceChildren(el('p', { class: 'muted', text: 'Reading the headers…' }));
    try {
      const view = await api('GET', `/v1/models/${encodeURIComponent(row.model.id)}`);
      renderSummary(row.summary, view.model);
    } catch (e) {
      if (e.status !== 401) row.summary.replaceChildren(el('p', { class: 'bad', text: `Could not read it: ${e.message}` }));
    }
  }

  const isModelFile = (path) => /\.(gguf|safetensors)$/i.test(path || '');

  // ---------------------------------------------------------------------------------------
  // The catalog

  function scheduleCatalog() {
    clearTimeout(page.catalogTimer);
    page.catalogTimer = setTimeout(() => loadCatalog().catch(() => {}), 250);
  }

  async function loadCatalog() {
    try {
      const data = await api('GET', '/v1/models');
      $('catalog-error').textContent = '';
      $('catalog-root').textContent = data.root ? `in ${data.root}` : '';
      renderCatalog(data.models || []);
    } catch (e) {
      if (e.status !== 401) $('catalog-error').textContent = `Could not read the catalog: ${e.message}`;
      throw e;
    }
  }

  function renderCatalog(models) {
    page.models = models;
    dropStaleCards(models);
    const body = $('catalog-body');
    const seen = new Set();
    models.forEach((model, index) => {
      seen.add(model.id);
      let row = page.rows.get(model.id);
      if (!row) {
        row = buildRow(model);
        page.rows.set(model.id, row);
      }
      updateRow(row, model);
      // Move only rows out of place, so a focused button keeps its focus.
      if (body.children[index] !== row.tr) body.insertBefore(row.tr, body.children[index] || null);
    });
    for (const [id, row] of page.rows) {
      if (!seen.has(id)) {
        row.tr.remove();
        page.rows.delete(id);
      }
    }
    $('catalog-empty').hidden = models.length > 0;
    $('catalog').hidden = models.length === 0;
  }

  function cell(label, ...children) {
    return el('td', { role: 'cell', 'data-label': label }, el('div', { class: 'cell' }, ...children));
  }

  function buildRow(model) {
    const parts = {
      ref: el('span', { class: 'ref' }),
      id: el('span', { class: 'id mono' }),
      vendor: el('span'),
      origin: el('span', { class: 'muted came-from' }),
      files: el('div'),
      size: el('span', { class: 'size' }),
      badge: el('span', { class: 'badge' }),
      statusNote: el('span', { class: 'status-note' }),
      path: el('code', { class: 'path' }),
      revision: el('span', { class: 'mono' }),
      note: el('span', { class: 'row-note', role: 'status' }),
      summary: el('div', { class: 'row-summary', hidden: true }),
    };
    parts.details = el('button', { type: 'button', text: 'Details', 'aria-expanded': 'false', onclick: () => showDetails(parts) });
    parts.verify = el('button', { type: 'button', text: 'Verify', onclick: () => verifyModel(parts) });
    parts.again = el('button', { type: 'button', text: 'Resume', onclick: () => downloadAgain(parts) });
    parts.remove = el('button', { type: 'button', text: 'Delete', class: 'danger', onclick: () => deleteModel(parts) });
    parts.tr = el(
      'tr',
      { role: 'row', 'data-model-id': model.id },
      cell('Model', parts.ref, parts.id, parts.summary),
      cell('Vendor', parts.vendor, parts.origin),
      cell('Files', parts.files),
      cell('Size', parts.size),
      cell('Status', parts.badge, parts.statusNote),
      cell('Local path', parts.path),
      cell('Revision', parts.revision),
      cell('Actions', el('div', { class: 'actions' }, parts.details, parts.verify, parts.again, parts.remove), parts.note),
    );
    return parts;
  }

  // Where the bytes came from, as the catalog records it in each file's source: reads from the
  // cluster's shared store end in "(shared store)"; anything else came from its origin (a peer
  // hive's mirror is an origin URL like any other).
  function cameFrom(files) {
    const kinds = new Set(files.filter((f) => f.source).map((f) => (/\(shared store\)$/.test(f.source) ? 'the shared store' : 'the origin')));
    return kinds.size ? `from ${[...kinds].sort().join(' and ')}` : '';
  }

  function updateRow(row, model) {
    row.model = model;
    const reference = model.reference || model.id;
    breakable(row.ref, reference);
    breakable(row.id, model.reference ? model.id : '');
    row.vendor.textContent = VENDOR_LABEL[model.scheme] || model.scheme || '—';
    row.origin.textContent = cameFrom(model.files || []);

    const files = model.files || [];
    row.files.replaceChildren();
    if (files.length === 1) {
      row.files.append(el('span', { class: 'mono', text: files[0].path }));
    } else if (files.length > 1) {
      const list = el('ul', { class: 'files' });
      for (const f of files) list.append(el('li', { class: 'mono', text: `${f.path} (${bytes(f.size)})` }));
      row.files.append(el('details', {}, el('summary', { text: `${files.length} files` }), list));
    } else {
      row.files.append(el('span', { class: 'muted', text: '—' }));
    }

    row.size.textContent = model.size != null ? bytes(model.size) : '—';
    const status = model.status || {};
    row.badge.textContent = status.state || 'unknown';
    row.badge.dataset.state = status.state || 'unknown';
    row.statusNote.classList.toggle('bad', status.state === 'failed' || status.state === 'damaged');
    if (status.error) row.statusNote.textContent = status.error;
    else if (status.state === 'incomplete' && status.total)
      row.statusNote.textContent = `${bytes(status.bytes)} of ${bytes(status.total)} on disk; download it again to resume`;
    else row.statusNote.textContent = '';
    breakable(row.path, model.path || model.dir || '');
    if (model.revision) {
      row.revision.textContent = /^[0-9a-f]{40}$/.test(model.revision) ? model.revision.slice(0, 12) : model.revision;
      row.revision.title = model.revision;
    } else {
      row.revision.textContent = '—';
      row.revision.title = '';
    }
    row.verify.hidden = status.state !== 'ready';
    row.details.hidden = status.state !== 'ready' || !files.some((f) => isModelFile(f.path));
    row.details.setAttribute('aria-label', `Details of ${reference}`);
    if (row.details.hidden) row.summary.hidden = true;
    row.verify.setAttribute('aria-label', `Verify ${reference}`);
    // An interrupted or failed entry can be fetched again; the partial files are reused.
    row.again.hidden = !model.reference || !(status.state === 'incomplete' || status.state === 'failed');
    row.again.dataset.redacted = String(Boolean(model.reference_redacted));
    row.again.textContent = status.state === 'failed' ? 'Retry' : 'Resume';
    row.again.setAttribute('aria-label', `${row.again.textContent} ${reference}`);
    row.remove.setAttribute('aria-label', `Delete ${reference}`);
    refreshRowProgress();
  }

  // A catalog entry being downloaded shows the live percentage of its download.
  function refreshRowProgress() {
    for (const row of page.rows.values()) {
      const model = row.model;
      if (!model || !model.status || model.status.state !== 'downloading') continue;
      const job = [...page.jobs.values()].find((j) => j.model === model.reference && !FINAL.has(j.state));
      const pct = job && percentOf(job.progress);
      row.statusNote.textContent = pct == null ? '' : `${Math.floor(pct)}%`;
    }
  }

  async function verifyModel(row) {
    const model = row.model;
    row.note.className = 'row-note';
    row.note.textContent = 'Verifying… (re-hashing every file)';
    row.verify.disabled = true;
    try {
      const job = await api('POST', '/v1/jobs', { operation: 'model_verify', model: model.id });
      const outcome = await finalEvent(job.job_id);
      const report = outcome.data.result || {};
      const notRecorded = report.not_recorded ? ` (the outcome could not be recorded: ${report.not_recorded})` : '';
      if (outcome.name === 'done') {
        const files = report.files;
        const count = files ? `${files.length} file${files.length === 1 ? '' : 's'}` : 'every file';
        row.note.className = 'row-note ok';
        row.note.textContent = `Verified: ${count} re-hashed and matching the catalog${notRecorded}`;
      } else {
        const refused = (report.files || []).filter((f) => f.outcome && f.outcome.result === 'refused');
        row.note.className = 'row-note bad';
        row.note.textContent = refused.length
          ? `Not verified: ${refused.map((f) => `${f.path} was not read (${f.outcome.reason})`).join('; ')}${notRecorded}`
          : `Verification failed: ${outcome.data.error || outcome.data.message || outcome.name}${notRecorded}`;
        scheduleCatalog();
      }
    } catch (e) {
      if (e.status !== 401) {
        row.note.className = 'row-note bad';
        row.note.textContent = `Could not verify: ${e.message}`;
      }
    } finally {
      row.verify.disabled = false;
    }
  }

  // Follows a job's event stream to its final event (`done`, `error` or `cancelled`).
  async function finalEvent(jobId) {
    const controller = new AbortController();
    let last = null;
    await readEvents(`/v1/jobs/${encodeURIComponent(jobId)}/stream`, controller.signal, (name, data) => {
      if (name === 'done' || name === 'error' || name === 'cancelled') {
        last = { name, data };
        controller.abort();
      }
    }).catch((e) => {
      if (!last) throw e;
    });
    if (!last) throw new ApiError(0, 'no_outcome', 'the job ended without saying how');
    return last;
  }

  async function downloadAgain(row) {
    const reference = row.model.reference;
    // A signed URL is recorded with its credentials replaced (the daemon says so): posting it
    // again would ask the server for a URL that was never valid.
    if (row.model.reference_redacted) {
      row.note.className = 'row-note bad';
      row.note.textContent =
        'This is a signed URL whose credentials were not stored (they show as REDACTED), so the page cannot fetch it again: start the download with the full signed URL.';
      return;
    }
    row.note.className = 'row-note';
    row.note.textContent = '';
    row.again.disabled = true;
    try {
      await startDownload(reference);
    } catch (e) {
      if (e.status !== 401) {
        row.note.className = 'row-note bad';
        row.note.textContent = `Could not start the download: ${e.message}`;
      }
    } finally {
      row.again.disabled = false;
    }
  }

  async function deleteModel(row) {
    const model = row.model;
    const reference = model.reference || model.id;
    const size = model.size != null ? ` (${bytes(model.size)})` : '';
    if (!window.confirm(`Delete ${reference}${size} and its files from this machine?`)) return;
    row.note.className = 'row-note';
    row.note.textContent = 'Deleting…';
    row.remove.disabled = true;
    try {
      const removed = await api('DELETE', `/v1/models/${encodeURIComponent(model.id)}`);
      const next = row.tr.nextElementSibling || row.tr.previousElementSibling;
      row.tr.remove();
      page.rows.delete(model.id);
      renderCatalog(page.models.filter((m) => m.id !== model.id));
      announce(`Deleted ${reference}${removed && removed.bytes != null ? `, ${bytes(removed.bytes)} freed` : ''}`);
      (next ? next.querySelector('button:not([hidden])') : $('catalog-title')).focus();
    } catch (e) {
      if (e.status !== 401) {
        row.note.className = 'row-note bad';
        row.note.textContent = `Could not delete: ${e.message}`;
      }
    } finally {
      row.remove.disabled = false;
    }
  }

  // ---------------------------------------------------------------------------------------
  // Start-up

  async function loadHealth() {
    try {
      const response = await fetch('/health', { cache: 'no-store' });
      const health = await response.json();
      $('hive-info').textContent = `hive ${health.hive_id} · version ${health.version}`;
    } catch {
      $('hive-info').textContent = '';
    }
  }

  async function start() {
    loadHealth();
    // Each shows its own error; a 401 has already brought up the token prompt.
    const results = await Promise.allSettled([loadJobs(), loadCatalog()]);
    if (results.some((r) => r.status === 'rejected' && r.reason.status === 401)) return;
    connectFeed();
  }

  function init() {
    $('download-form').addEventListener('submit', onDownloadSubmit);
    $('inspect-button').addEventListener('click', onInspect);
    $('token-form').addEventListener('submit', onTokenSubmit);
    $('forget-token').addEventListener('click', forgetToken);
    $('clear-finished').addEventListener('click', clearFinished);
    $('refresh-catalog').addEventListener('click', () => {
      loadCatalog().catch(() => {});
      loadJobs().catch(() => {});
    });
    $('jobs-title').tabIndex = -1;
    $('catalog-title').tabIndex = -1;
    $('forget-token').hidden = !page.token;
    start();
  }

  init();
})();
