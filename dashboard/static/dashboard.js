// The dashboard, enhanced: a fresh current-visitors count, the filter forms, and Plausible's
// keyboard shortcuts.
// The page works without it; a shortcut only navigates, so the server still does the work.
'use strict';
(() => {
  const live = document.querySelector('.dash-live');
  if (live) {
    const count = live.querySelector('.live-count');
    const label = live.querySelector('.live-label');
    const number = new Intl.NumberFormat(document.documentElement.lang);
    let timer = 0;
    const refresh = async () => {
      try {
        const response = await fetch(live.dataset.url, { credentials: 'same-origin' });
        const n = response.ok ? await response.json() : null;
        if (typeof n !== 'number' || count.textContent === number.format(n)) return;
        // One change to the live region, so it is announced once.
        count.textContent = number.format(n);
        label.textContent = n === 1 ? live.dataset.one : live.dataset.other;
      } catch {
        // Offline, or signed out: the last count stays.
      }
    };
    const schedule = () => {
      clearInterval(timer);
      // A hidden tab asks nothing; it catches up the moment it is shown again.
      if (!document.hidden) timer = setInterval(refresh, 1000 * live.dataset.interval);
    };
    document.addEventListener('visibilitychange', () => {
      if (!document.hidden) refresh();
      schedule();
    });
    schedule();
  }

  // The filter forms (_filters.html) open in <details> without this; with it, one at a time,
  // its first field focused, and Esc, Cancel or a click elsewhere closes it. Registered before
  // the shortcuts below, which see Esc as handled here and so do not remove every filter.
  const disclosures = [...document.querySelectorAll('details.filter-disclosure')];
  const close = (details, focus) => {
    details.open = false;
    if (focus) details.querySelector('summary').focus();
  };
  for (const details of disclosures) {
    details.addEventListener('toggle', () => {
      if (!details.open) return;
      // What <details name> does where a browser does not know it yet.
      for (const other of disclosures) if (other !== details) other.open = false;
      // All of it in sight (a phone shows the Filter button near the bottom), then its field.
      details.querySelector('form').scrollIntoView({ block: 'nearest' });
      details.querySelector('select').focus({ preventScroll: true });
    });
    const cancel = details.querySelector('.filter-cancel');
    cancel.hidden = false;
    cancel.addEventListener('click', () => close(details, true));
  }
  document.addEventListener('keydown', (event) => {
    const open = disclosures.find((details) => details.open);
    if (event.key !== 'Escape' || !open || event.defaultPrevented) return;
    event.preventDefault();
    close(open, true);
  });
  document.addEventListener('click', (event) => {
    for (const details of disclosures) if (!details.contains(event.target)) details.open = false;
  });

  // Parts that load after the page (a new filter on a big site): each fetched at once, in
  // parallel, and put in place of its placeholder, which keeps the layout still meanwhile.
  for (const placeholder of document.querySelectorAll('section[data-panel]')) {
    fetch(placeholder.dataset.panel, { credentials: 'same-origin' })
      .then((response) => (response.ok ? response.text() : Promise.reject(response.status)))
      .then((html) => {
        const parsed = new DOMParser().parseFromString(html, 'text/html');
        const panel = parsed.querySelector('section');
        if (panel) placeholder.replaceWith(document.importNode(panel, true));
      })
      .catch(() => {
        // The placeholder's link still shows the whole page, waiting for every panel.
        placeholder.removeAttribute('aria-busy');
      });
  }

  const keys = document.querySelector('.dash-keys');
  if (!keys) return;
  keys.hidden = false;
  // Plausible's letters, for the periods Zeef has.
  const PERIODS = { d: 'day', e: 'day', w: '7d', 7: '7d', f: '28d', t: '30d', n: '91d',
    m: 'month', p: 'month', y: 'year', l: '12mo', a: 'all', r: 'realtime' };
  // What an arrow moves a period by: days, or months from the first of the anchor's month.
  const DAYS = { day: 1, '7d': 7, '28d': 28, '30d': 30, '91d': 91 };
  const MONTHS = { month: 1, '6mo': 6, '12mo': 12, year: 12 };
  // Today where the site is, as the server counts days.
  const today = () => {
    const p = {};
    for (const { type, value } of new Intl.DateTimeFormat('en', { timeZone: keys.dataset.zone,
      year: 'numeric', month: '2-digit', day: '2-digit' }).formatToParts()) p[type] = value;
    return `${p.year}-${p.month}-${p.day}`;
  };
  const shift = (iso, days, months) => {
    const day = new Date(`${iso}T00:00:00Z`);
    if (months) day.setUTCDate(1);
    day.setUTCMonth(day.getUTCMonth() + months, day.getUTCDate() + days);
    return day.toISOString().slice(0, 10);
  };

  document.addEventListener('keydown', (event) => {
    const target = event.target;
    if (event.defaultPrevented || event.altKey || event.ctrlKey || event.metaKey ||
        event.shiftKey || event.isComposing || target.isContentEditable ||
        /^(INPUT|TEXTAREA|SELECT)$/.test(target.tagName)) return;
    const url = new URL(location.href);
    const q = url.searchParams;
    const key = event.key.length === 1 ? event.key.toLowerCase() : event.key;
    const now = today();
    if (key in PERIODS) {
      q.set('period', PERIODS[key]);
      q.delete('date');
      if (key === 'e') q.set('date', shift(now, -1, 0));
      if (key === 'p') q.set('date', shift(now, 0, -1));
      if (key === 'r') q.delete('compare'); // realtime has nothing to compare with
    } else if (key === 'x') {
      if (q.get('compare')) q.delete('compare');
      else q.set('compare', 'previous_period');
    } else if (key === 'Escape') {
      q.delete('filters');
    } else if (key === 'ArrowLeft' || key === 'ArrowRight') {
      const period = q.get('period') || '30d';
      const step = key === 'ArrowLeft' ? -1 : 1;
      const anchor = q.get('date') || now;
      if (!(period in DAYS || period in MONTHS) || !/^\d{4}-\d\d-\d\d$/.test(anchor)) return;
      const next = shift(anchor, step * (DAYS[period] || 0), step * (MONTHS[period] || 0));
      if (next > now) return; // no periods that have not begun
      q.set('date', next);
    } else {
      return;
    }
    if (url.href === location.href) return;
    event.preventDefault();
    location.assign(url.href);
  });
})();
