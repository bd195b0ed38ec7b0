// tapedeck console: the little script the pages use. Every page works without it; with it the
// Live page and a running job update themselves, and the edit file is checked as it is typed.
(function () {
  'use strict';

  var csrfMeta = document.querySelector('meta[name="csrf-token"]');
  var csrf = csrfMeta ? csrfMeta.getAttribute('content') : '';

  function get(url) {
    return fetch(url, { credentials: 'same-origin', cache: 'no-store', headers: { 'X-Requested-With': 'fetch' } });
  }

  // poll replaces el's content with the HTML fragment at url every period ms, keeping open
  // <details> open; done(el) may stop it by returning true.
  function poll(el, url, period, done) {
    var busy = false;
    var timer = setInterval(function () {
      if (busy || document.hidden) return;
      busy = true;
      get(url).then(function (r) {
        if (r.status === 401) { location.reload(); return null; }
        return r.ok ? r.text() : null;
      }).then(function (html) {
        if (html === null || html === undefined) return;
        var open = [];
        el.querySelectorAll('details[open]').forEach(function (d) { if (d.id) open.push(d.id); });
        el.innerHTML = html;
        open.forEach(function (id) { var d = document.getElementById(id); if (d) d.open = true; });
        el.setAttribute('data-updated', String(Date.now()));
        if (done && done(el)) clearInterval(timer);
      }).catch(function () { /* keep the last view; try again */ }).finally(function () { busy = false; });
    }, period);
  }

  // Live: the sessions being recorded, every second.
  var live = document.querySelector('[data-poll]');
  if (live) poll(live, live.getAttribute('data-poll'), 1000);

  // Session: while the post-call job runs, its panel every 2 s; when it finishes, the page again
  // (the new composite).
  var panel = document.getElementById('job-panel');
  var job = panel && panel.querySelector('[data-job]');
  if (job && job.getAttribute('data-finished') === 'false') {
    poll(panel, job.getAttribute('data-job'), 2000, function (el) {
      var j = el.querySelector('[data-job]');
      if (j && j.getAttribute('data-finished') === 'true') {
        if (location.search) location.replace(location.pathname + '#composites');
        else location.reload();
        return true;
      }
      return false;
    });
  }

  // Re-render: line numbers beside the edit file, and its check against the recording as one types.
  var ed = document.querySelector('textarea[data-check]');
  if (ed) {
    var gutter = ed.parentNode.querySelector('.gutter');
    var out = document.getElementById('edits-check');
    var layout = ed.form ? ed.form.querySelector('select[name="layout"]') : null;
    var badLine = 0;
    var formError = document.getElementById('form-error');
    if (formError) badLine = parseInt(formError.getAttribute('data-line') || '0', 10);

    var numbers = function () {
      var n = ed.value.split('\n').length;
      var frag = document.createDocumentFragment();
      for (var i = 1; i <= Math.max(n, 1); i++) {
        var s = document.createElement('span');
        s.textContent = String(i);
        if (i === badLine) s.className = 'bad';
        frag.appendChild(s);
        frag.appendChild(document.createTextNode('\n'));
      }
      gutter.textContent = '';
      gutter.appendChild(frag);
      gutter.scrollTop = ed.scrollTop;
    };
    var goTo = function (line) {
      var lines = ed.value.split('\n');
      var start = 0;
      for (var i = 0; i < line - 1 && i < lines.length; i++) start += lines[i].length + 1;
      ed.focus();
      ed.setSelectionRange(start, start + (lines[line - 1] || '').length);
      var lh = parseFloat(getComputedStyle(ed).lineHeight) || 20;
      ed.scrollTop = Math.max(0, (line - 3) * lh);
    };
    var show = function (res) {
      out.textContent = '';
      if (res.ok) {
        badLine = 0;
        out.className = 'check-result ok';
        out.textContent = ed.value.trim() ? '✓ The edit file fits this recording.' : '';
      } else {
        badLine = res.line || 0;
        out.className = 'check-result bad';
        var b = document.createElement('b');
        b.textContent = res.line ? 'Line ' + res.line + ': ' : 'Error: ';
        out.appendChild(b);
        out.appendChild(document.createTextNode(res.message || 'not valid'));
        if (res.line) {
          var a = document.createElement('button');
          a.type = 'button';
          a.className = 'btn small goto';
          a.textContent = 'Go to line ' + res.line;
          a.addEventListener('click', function () { goTo(res.line); });
          out.appendChild(a);
        }
      }
      numbers();
    };
    var timer = 0;
    var seq = 0;
    var check = function () {
      var mine = ++seq;
      var url = ed.getAttribute('data-check') + (layout && layout.value ? '?layout=' + encodeURIComponent(layout.value) : '');
      fetch(url, {
        method: 'POST', credentials: 'same-origin', cache: 'no-store',
        headers: { 'Content-Type': 'text/plain; charset=utf-8', 'X-CSRF-Token': csrf, 'X-Requested-With': 'fetch' },
        body: ed.value
      }).then(function (r) { return r.json(); }).then(function (res) {
        if (mine === seq) show(res);
      }).catch(function () { /* the form is checked again on submit */ });
    };
    ed.addEventListener('input', function () {
      numbers();
      clearTimeout(timer);
      timer = setTimeout(check, 400);
    });
    ed.addEventListener('scroll', function () { gutter.scrollTop = ed.scrollTop; });
    if (layout) layout.addEventListener('change', function () { if (ed.value.trim()) check(); });
    numbers();
    if (badLine > 0) goTo(badLine);
  }
})();
