/*
 * Zeef tracker: counts page views and events with no cookie, no storage and no third party.
 *
 *   <script defer src="https://ZEEF_HOST/tracker.js" data-domain="example.com"></script>
 *
 * Attributes: data-domain (site, default the page's host), data-api (collector URL, default
 * the script's own origin), data-hash (count #routes as pages), data-allow-local (count
 * localhost, file: and automated browsers, for tests), data-outbound, data-downloads[="pdf,zip"],
 * data-engagement (opt-in automatic tracking: loads tracker-auto.js from the same origin),
 * data-require-consent (send nothing until consent.js reports analytics consent).
 *
 * Built with `npm run build` (terser) into server/static/tracker.js, which is what is served
 * and what the 1,024-byte gzip budget is measured on.
 */
;(function (window, document) {
  'use strict'
  var script = document.currentScript
  if (!script) return
  var location = window.location
  var navigator = window.navigator
  var attr = function (name) {
    return script.getAttribute('data-' + name)
  }
  var origin = new URL(script.src).origin
  var endpoint = attr('api') || origin + '/api/event'
  var domain = attr('domain') || location.hostname
  var hashMode = attr('hash') != null
  var lastPage

  // Why an event must not be sent, or nothing: the visitor's signals come first.
  function ignored() {
    if (
      attr('allow-local') == null &&
      (/^(localhost|127(\.\d+){3}|\[::1\])$/.test(location.hostname) ||
        location.protocol == 'file:' ||
        navigator.webdriver ||
        window.Cypress)
    )
      return 1
    // Do Not Track and Global Privacy Control: honoured unless the site owner opted out,
    // which the collector checks again against the site's settings.
    if ((navigator.globalPrivacyControl || navigator.doNotTrack == '1') && attr('dnt') != 'ignore')
      return 1
    // A site that counts only consented visitors: nothing before the banner's "yes".
    if (attr('require-consent') != null && !(consent() && consent().accepted('analytics'))) return 1
    try {
      // Set only on the visitor's own request ("do not count me"), never by this script.
      return localStorage.zeef_ignore == 'true'
    } catch (e) {}
  }

  function send(name, options) {
    options = options || {}
    var done = options.callback || function () {}
    if (ignored()) return done()
    var payload = { n: name, u: options.url || location.href, d: domain, r: document.referrer || null }
    if (options.props) payload.p = options.props
    if (options.revenue) payload.$ = options.revenue
    if (options.interactive === false) payload.i = false
    if (hashMode) payload.h = 1
    // The first-party ID exists only while the visitor accepts analytics (consent.js owns it).
    var id = consent() && consent().visitorId()
    if (id) payload.c = id
    if (name == 'engagement') {
      payload.sd = options.sd
      payload.e = options.e
    }
    // A string body goes as text/plain: a "simple" request, so no CORS preflight. sendBeacon
    // survives the page being closed; fetch is used when the caller waits for the answer.
    var body = JSON.stringify(payload)
    if (!options.callback && navigator.sendBeacon && navigator.sendBeacon(endpoint, body)) return
    // Cross-origin fetch sends no cookies by default: none are needed, none go.
    fetch(endpoint, { method: 'POST', body: body, keepalive: true }).then(done, done)
  }

  function consent() {
    return window.zeefConsent
  }

  function page() {
    var path = location.pathname + (hashMode ? location.hash : '')
    if (path == lastPage) return
    lastPage = path
    send('pageview')
  }

  // Single-page apps: a pushState or a replaceState that changes the path is a new page.
  var history = window.history
  ;['pushState', 'replaceState'].forEach(function (method) {
    var original = history[method]
    history[method] = function () {
      original.apply(this, arguments)
      page()
    }
  })
  window.addEventListener('popstate', page)
  if (hashMode) window.addEventListener('hashchange', page)

  var queue = (window.zeef && window.zeef.q) || []
  window.zeef = send
  send.page = page
  // Called by consent.js on analytics consent: on a consent-only site, count the page now.
  send.consented = function () {
    if (attr('require-consent') != null) {
      lastPage = 0
      page()
    }
  }

  // A prerendered page is not a visit until the visitor actually sees it.
  if (document.visibilityState == 'prerender') {
    document.addEventListener('visibilitychange', function once() {
      if (document.visibilityState == 'prerender') return
      document.removeEventListener('visibilitychange', once)
      page()
    })
  } else {
    page()
  }
  for (var i = 0; i < queue.length; i++) send.apply(null, queue[i])

  if (attr('outbound') != null || attr('downloads') != null || attr('engagement') != null) {
    var auto = document.createElement('script')
    auto.src = origin + '/tracker-auto.js'
    send.script = script
    document.head.appendChild(auto)
  }
})(window, document)
