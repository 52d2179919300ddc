/*
 * Zeef consent banner: asks, remembers and proves a visitor's cookie choice.
 *
 *   <script src="https://ZEEF_HOST/consent.js" data-site="example.com"></script>
 *
 * Loads consent.css and the site's config (texts, categories, revision) from its own origin,
 * shows a bottom banner until the visitor decides, stores the decision in a first-party
 * cookie (zeef_consent), POSTs each decision to {origin}/api/consent as proof, and runs
 * <script type="text/plain" data-category="..."> blocks once their category is accepted.
 * No eval, no inline style text: works under a CSP whose script-src, style-src and
 * connect-src are the Zeef host. API: window.zeefConsent (see the end of this file).
 *
 * Built with `npm run build` (terser) into server/static/consent.js; the size budget (with
 * consent.css and the English texts, 8 KiB gzipped) is checked by tests.
 */
;(function (window, document) {
  'use strict'
  const script = document.currentScript
  // Included twice (a template and a tag manager, say): the first copy stays in charge.
  if (!script || window.zeefConsent) return

  const { location, navigator } = window
  const html = document.documentElement
  const origin = new URL(script.src).origin
  const site = script.getAttribute('data-site') || location.hostname
  // Primary subtag of the page's language, then the browser's; the server falls back to en.
  const lang = (html.lang || navigator.language || 'en').split('-')[0].toLowerCase()
  const gpc = !!navigator.globalPrivacyControl
  // The admin's preview (data-preview): both layers work, but nothing is read, stored, sent,
  // told or unblocked, so a preview never becomes a decision or touches a cookie.
  const preview = script.hasAttribute('data-preview')
  const COOKIE = 'zeef_consent'
  const VISITOR = 'zeef_id'
  const DAY = 86400
  const BLOCKED = 'script[type="text/plain"][data-category]'
  const listeners = []

  let config // the site's config, once fetched
  let stored = preview ? null : readStored() // the decision in the cookie, valid or not
  let state = null // the decision in force on this page: {id, r, c, t, e}
  let told = false // whether the tracker has been told about analytics consent on this page
  let ui // the banner's elements, built once config and stylesheet are in
  let pending = 0 // a layer asked for through the API before the banner could be built
  let current // the open layer, if any
  let returnTo // where focus was before a layer opened

  const now = () => Math.floor(Date.now() / 1000)
  const accepted = (category) => !!state && state.c.includes(category)
  const text = (key) => config.texts[key] || key

  // -- cookies ----------------------------------------------------------------------------

  function getCookie(name) {
    const match = document.cookie.match('(?:^|; )' + name + '=([^;]*)')
    return match && match[1]
  }

  function setCookie(name, value, maxAge, path, domain) {
    document.cookie =
      name + '=' + value + '; Max-Age=' + maxAge + '; Path=' + (path || '/') +
      (domain ? '; Domain=' + domain : '') +
      '; SameSite=Lax' + (location.protocol == 'https:' ? '; Secure' : '')
  }

  function readStored() {
    try {
      const value = JSON.parse(decodeURIComponent(getCookie(COOKIE)))
      return value && value.id && Array.isArray(value.c) ? value : null
    } catch (e) {
      return null
    }
  }

  // Deletes a declared cookie ("_fbp" or "_fbp*"). A cookie goes only when deleted with the
  // path and domain it was set with, which the page cannot read: so try each likely one.
  function forget(declared) {
    const prefix = declared.name.replace(/\*$/, '')
    const wildcard = prefix != declared.name
    const labels = location.hostname.split('.')
    const domains = ['', declared.domain]
    for (let i = 0; i < labels.length - 1; i++) domains.push(labels.slice(i).join('.'))
    document.cookie.split('; ').forEach((pair) => {
      const name = pair.split('=')[0]
      if (!(wildcard ? name.startsWith(prefix) : name == prefix)) return
      domains.forEach((domain) => {
        ;['/', declared.path].forEach((path) => setCookie(name, '', 0, path, domain))
      })
    })
  }

  // -- identifiers ------------------------------------------------------------------------

  const random = (bytes) => crypto.getRandomValues(new Uint8Array(bytes))

  // A version 4 UUID. getRandomValues, unlike crypto.randomUUID, works on http pages too.
  function uuid() {
    const hex = Array.from(random(16), (byte, i) =>
      (i == 6 ? (byte & 15) | 64 : i == 8 ? (byte & 63) | 128 : byte).toString(16).padStart(2, '0')
    ).join('')
    return hex.replace(/(.{8})(.{4})(.{4})(.{4})/, '$1-$2-$3-$4-')
  }

  // 128 random bits as 22 base64url characters: the analytics visitor ID.
  const visitorId = () =>
    btoa(String.fromCharCode(...random(16)))
      .slice(0, 22)
      .replace(/\+/g, '-')
      .replace(/\//g, '_')

  // -- putting a decision in force --------------------------------------------------------

  function choices() {
    const result = {}
    config.categories.forEach((category) => (result[category.id] = accepted(category.id)))
    return result
  }

  const snapshot = () => ({
    consent_id: state.id,
    revision: state.r,
    choices: choices(),
    decided: state.t,
    expires: state.e,
  })

  // Google Consent Mode v2: through the page's gtag, or the standard dataLayer shim.
  function gtag() {
    window.dataLayer = window.dataLayer || []
    window.gtag =
      window.gtag ||
      function () {
        window.dataLayer.push(arguments)
      }
    window.gtag.apply(window, arguments)
  }

  function apply() {
    const analytics = accepted('analytics')
    if (analytics) {
      // The visitor ID lives as long as the consent it rests on, never longer (13 months).
      // An existing ID is kept (a returning visitor stays one) if it is one of ours.
      const id = /^[\w-]{22}$/.test(getCookie(VISITOR)) ? getCookie(VISITOR) : visitorId()
      setCookie(VISITOR, id, Math.min(396 * DAY, state.e - now()))
    } else {
      forget({ name: VISITOR, path: '/' })
    }
    config.categories.forEach((category) => {
      if (!accepted(category.id)) category.cookies.forEach(forget)
    })
    if (config.consent_mode_v2) {
      const ads = accepted('marketing') ? 'granted' : 'denied'
      gtag('consent', 'update', {
        ad_storage: ads,
        ad_user_data: ads,
        ad_personalization: ads,
        analytics_storage: analytics ? 'granted' : 'denied',
      })
    }
    activate(document)
    // Tell the tracker, once per page: a consent-only site then counts this page, once.
    if (analytics && !told && window.zeef && window.zeef.consented) {
      told = true
      window.zeef.consented()
    }
    const decision = snapshot()
    listeners.forEach((listener) => notify(listener, decision))
  }

  // A listener of the site's that throws must not stop the others, nor the banner.
  function notify(listener, decision) {
    try {
      listener(decision)
    } catch (error) {
      console.error(error)
    }
  }

  // Blocked scripts become real ones once every category they name is accepted. A script
  // element inserted by the page runs; changing the type of a parsed one would not.
  function activate(node) {
    if (!state || !node.querySelectorAll) return
    const found = node.matches && node.matches(BLOCKED) ? [node] : node.querySelectorAll(BLOCKED)
    found.forEach((blocked) => {
      if (!blocked.getAttribute('data-category').split(/[\s,]+/).every(accepted)) return
      const live = document.createElement('script')
      Array.from(blocked.attributes).forEach((attribute) => {
        if (attribute.name != 'type') live.setAttribute(attribute.name, attribute.value)
      })
      live.nonce = blocked.nonce // hidden from getAttribute, still needed under a nonce CSP
      if (!blocked.hasAttribute('async')) live.async = false // keep document order
      live.text = blocked.text
      blocked.replaceWith(live)
    })
  }

  new MutationObserver((records) =>
    records.forEach((record) => record.addedNodes.forEach(activate))
  ).observe(html, { childList: true, subtree: true })

  // accept_all, reject_all or custom (the preferences' switches). A change that takes back
  // anything is a withdrawal; a new answer after a new revision or expiry is a renewal.
  function decide(choice) {
    if (preview) return show(0)
    const previous = state
    const ids = config.categories
      .filter((c) =>
        c.required || choice == 'accept_all' || (choice == 'custom' && ui.switches[c.id].checked)
      )
      .map((c) => c.id)
    let action = choice
    if (previous) {
      if (previous.c.some((id) => !ids.includes(id))) action = 'withdraw'
    } else if (stored) {
      action = 'renew'
    }
    // Six months unless the site says otherwise; never more than 13 (the server checks too).
    const lifetime = Math.min(config.lifetime_days || 182, 396) * DAY
    const t = now()
    const id = (stored && stored.id) || uuid() // one per browser, kept across decisions
    state = stored = { id, r: config.revision, c: ids, t, e: t + lifetime }
    setCookie(COOKIE, encodeURIComponent(JSON.stringify(state)), lifetime)
    show(0)
    send(action)
    apply()
  }

  // The proof: what was shown (revision, language, hash of the texts) and what was chosen.
  // Nothing else: no address, no visitor ID. text/plain, so no CORS preflight.
  function send(action) {
    const url = origin + '/api/consent'
    const body = JSON.stringify({
      site: config.site,
      consent_id: state.id,
      action,
      choices: choices(),
      revision: config.revision,
      language: config.language,
      texts_hash: config.texts_hash,
      path: location.pathname,
      gpc,
    })
    if (!(navigator.sendBeacon && navigator.sendBeacon(url, body)))
      fetch(url, { method: 'POST', body, keepalive: true, credentials: 'omit' }).catch(() => {})
  }

  // -- the banner -------------------------------------------------------------------------

  function el(tag, props, children) {
    const node = document.createElement(tag)
    for (const key in props) {
      if (key in node) node[key] = props[key]
      else node.setAttribute(key, props[key])
    }
    node.append(...(children || []))
    return node
  }

  const button = (label, onclick, className) =>
    el('button', { type: 'button', className: className || 'btn', onclick }, [label])

  // A layer is a dialog: labelled by its heading, focus kept inside while it is open, Escape
  // closes it. There is no backdrop: the page behind stays visible and clickable.
  function layer(id, heading, children, third) {
    const props = {
      className: 'panel ' + id,
      role: 'dialog',
      'aria-modal': 'true',
      'aria-labelledby': id + '-t',
      tabIndex: -1,
      hidden: true,
    }
    const panel = el('div', props, [
      el('h2', { id: id + '-t' }, [heading]),
      ...children,
      el('div', { className: 'btns' }, [
        button(text('accept_all'), () => decide('accept_all')),
        button(text('reject_all'), () => decide('reject_all')),
        third,
      ]),
      button('\u00d7', close, 'x'), // its label, set by show(), says what closing does
    ])
    panel.addEventListener('keydown', (event) => {
      if (event.key == 'Escape') {
        event.preventDefault()
        close()
      } else if (event.key == 'Tab') {
        const focusable = panel.querySelectorAll('a[href],button,input:not([disabled])')
        const first = focusable[0]
        const last = focusable[focusable.length - 1]
        const active = ui.root.activeElement
        if (event.shiftKey ? active == first || active == panel : active == last) {
          event.preventDefault()
          ;(event.shiftKey ? last : first).focus()
        }
      }
    })
    return panel
  }

  function cookieTable(cookies) {
    const row = (tag, cells) =>
      el('tr', {}, cells.map((cell) => el(tag, tag == 'th' ? { scope: 'col' } : {}, [cell || ''])))
    return el('table', {}, [
      row('th', ['cookie_name', 'cookie_purpose', 'cookie_lifetime'].map(text)),
      ...cookies.map((c) =>
        row('td', [c.name, c.purpose || text('cookie.' + c.name + '.purpose'), c.lifetime])
      ),
    ])
  }

  function build(root) {
    // Who processes what and why, and a link to the privacy statement: both layers open with it.
    const intro = () =>
      el('p', {}, [
        text('description').replace(/{controller}/g, config.controller || config.site),
        ...(/^https?:\/\//.test(config.policy_url || '')
          ? [' ', el('a', { href: config.policy_url }, [text('policy_link')])]
          : []),
      ])
    const switches = {}
    const categories = config.categories.map((category) => {
      const id = 'c-' + category.id
      const input = (switches[category.id] = el('input', {
        type: 'checkbox',
        role: 'switch',
        id,
        disabled: !!category.required,
        'aria-describedby': id + '-d',
      }))
      return el('div', { className: 'cat' }, [
        el('div', { className: 'row' }, [
          el('label', { htmlFor: id }, [category.name]),
          category.required ? el('span', { className: 'on' }, [text('always_on')]) : '',
          input,
        ]),
        el('p', { id: id + '-d' }, [category.description || '']),
        category.cookies.length ? cookieTable(category.cookies) : '',
      ])
    })
    const consentId = el('code')
    const idLine = el('p', { className: 'id' }, [text('consent_id') + ': ', consentId])
    const more = button(text('preferences'), () => show(2))
    const banner = layer('first', text('title'), [intro()], more)
    const save = button(text('save'), () => decide('custom'))
    const prefs = layer('prefs', text('preferences'), [intro(), ...categories, idLine], save)
    const reopen = button(text('reopen'), () => show(2), 'reopen')
    reopen.hidden = true
    root.append(el('div', { className: 'zc', lang: config.language }, [banner, prefs, reopen]))
    const closers = root.querySelectorAll('.x')
    return { root, layers: [banner, prefs], reopen, switches, consentId, idLine, closers }
  }

  // 0: closed (the reopen button shows), 1: the first layer, 2: preferences.
  function show(which) {
    if (!ui) return (pending = which)
    const open = ui.layers[which - 1]
    const inside = !!current && current.contains(ui.root.activeElement)
    if (open && !current) returnTo = ui.root.activeElement || document.activeElement
    if (which == 2) {
      // The switches show the decision in force; without one, every optional one is off
      // (nothing pre-ticked; with Global Privacy Control too).
      config.categories.forEach((c) => (ui.switches[c.id].checked = c.required || accepted(c.id)))
      ui.idLine.hidden = !(stored && stored.id)
      ui.consentId.textContent = stored ? stored.id : ''
    }
    // Closing is refusing while undecided (the easy way out never means yes); once decided,
    // it leaves the decision as it is. The X says which.
    const closeLabel = text(state ? 'close' : 'close_reject')
    ui.closers.forEach((x) => x.setAttribute('aria-label', closeLabel))
    ui.layers.forEach((l) => (l.hidden = l != open))
    ui.reopen.hidden = !!open
    current = open
    if (open) open.focus()
    else if (inside && returnTo && returnTo.focus) returnTo.focus()
  }

  function close() {
    if (state) show(0)
    else decide('reject_all')
  }

  // -- start: config and stylesheet in parallel -------------------------------------------

  const styled = new Promise((resolve) => {
    const mount = () => {
      // A shadow root keeps the site's CSS out (and ours in): no page rule can make the
      // reject button smaller or fainter than the accept button.
      const host = document.createElement('zeef-consent')
      const root = host.attachShadow({ mode: 'open' })
      const link = el('link', { rel: 'stylesheet', href: origin + '/consent.css' })
      link.onload = link.onerror = () => resolve(root)
      root.append(link)
      document.body.append(host)
    }
    if (document.readyState == 'loading') document.addEventListener('DOMContentLoaded', mount)
    else mount()
  })

  const query = '?site=' + encodeURIComponent(site) + '&lang=' + encodeURIComponent(lang)
  // A preview wants the config just saved, not one cached for five minutes.
  fetch(origin + '/consent/config' + query, {
    credentials: 'omit',
    cache: preview ? 'no-store' : 'default',
  })
    .then((response) => {
      if (!response.ok) throw new Error('zeef consent: ' + response.status + ' for ' + site)
      return response.json()
    })
    .then((loaded) => {
      config = loaded
      if (config.consent_mode_v2 && !preview) {
        // Everything denied until the visitor answers; apply() sends the answer in force.
        const denied = 'denied'
        gtag('consent', 'default', {
          ad_storage: denied,
          ad_user_data: denied,
          ad_personalization: denied,
          analytics_storage: denied,
        })
      }
      // Ask again when the site changed what it asks (revision) or the answer expired.
      if (stored && stored.r === config.revision && stored.e > now()) {
        state = stored
        apply()
      }
      // Back from Zeef's my-data page, where the visitor withdrew: this browser's choice
      // follows (a rejection, recorded), and the visitor ID cookie goes.
      if (location.hash == '#zeef-withdrawn' && stored && !preview) {
        history.replaceState(null, '', location.pathname + location.search)
        decide('reject_all')
      }
      return styled
    })
    .then((root) => {
      ui = build(root)
      show(pending || (state ? 0 : 1))
    })
    .catch((error) => console.warn(error))

  // -- API --------------------------------------------------------------------------------

  window.zeefConsent = {
    show: () => show(1), // the first layer, e.g. from a "cookie settings" footer link
    showPreferences: () => show(2),
    accepted, // accepted('marketing') -> true/false
    // fn(state) now if a decision is in force, then on every decision.
    onChange(listener) {
      listeners.push(listener)
      if (state) notify(listener, snapshot())
    },
    // The analytics visitor ID, only while analytics is accepted (tracker.js sends it).
    visitorId: () => (accepted('analytics') && getCookie(VISITOR)) || null,
    consentId: () => (stored && stored.id) || null,
    // The visitor's own data page at Zeef (see, download, erase, withdraw). The IDs ride in
    // the fragment, which reaches no server log and no Referer; r is where to come back to.
    myDataUrl: () =>
      origin + '/privacy/' + encodeURIComponent((config && config.site) || site) +
      '/my-data?lang=' + lang + '#' +
      new URLSearchParams({
        v: getCookie(VISITOR) || '', // theirs while it is there, even before config loads
        c: (stored && stored.id) || '',
        r: location.origin + location.pathname,
      }),
  }
})(window, document)
