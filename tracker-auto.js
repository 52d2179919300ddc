/*
 * Zeef's opt-in automatic tracking, loaded by tracker.js only when the page asks for it:
 *   data-outbound           clicks on links to other sites -> "Outbound Link: Click" {url}
 *   data-downloads[="a,b"]  clicks on file links -> "File Download" {url}
 *   data-engagement         on page hide or SPA navigation: "engagement" with engaged time (ms)
 *                           and scroll depth (%), so one-page visits get a real duration.
 * Link URLs are sent without their query string or fragment: they may carry personal data.
 */
;(function (window, document) {
  'use strict'
  var zeef = window.zeef
  if (!zeef || !zeef.script) return
  var script = zeef.script
  var location = window.location
  var attr = function (name) {
    return script.getAttribute('data-' + name)
  }
  var downloads = attr('downloads')
  var extensions = (
    downloads || 'pdf,xlsx,docx,txt,rtf,csv,exe,key,pps,ppt,pptx,7z,pkg,rar,gz,zip,avi,mov,mp4,mpeg,wmv,midi,mp3,wav,wma,dmg,iso,msi'
  ).split(',')

  function onClick(event) {
    if (event.type == 'auxclick' && event.button != 1) return
    var link = event.target.closest && event.target.closest('a[href]')
    if (!link) return
    var url = new URL(link.href, location.href)
    if (!/^https?:$/.test(url.protocol)) return
    var bare = url.origin + url.pathname
    var extension = url.pathname.split('.').pop().toLowerCase()
    if (downloads != null && url.pathname.indexOf('.') > 0 && extensions.indexOf(extension) >= 0) {
      zeef('File Download', { props: { url: bare } })
    } else if (attr('outbound') != null && url.host != location.host) {
      zeef('Outbound Link: Click', { props: { url: bare } })
    }
  }
  if (attr('outbound') != null || downloads != null) {
    document.addEventListener('click', onClick, true)
    document.addEventListener('auxclick', onClick, true)
  }

  if (attr('engagement') == null) return

  var pageUrl = location.href
  var engaged = 0 // ms engaged on this page so far, not yet sent
  var since = document.visibilityState == 'visible' ? Date.now() : 0
  var maxDepth = 0
  var sentDepth = -1

  function depth() {
    var root = document.documentElement
    var height = Math.max(root.scrollHeight, document.body ? document.body.scrollHeight : 0)
    var seen = window.scrollY + window.innerHeight
    return height ? Math.min(100, Math.round((seen / height) * 100)) : 100
  }

  function stopClock() {
    if (since) engaged += Date.now() - since
    since = 0
  }

  function report() {
    stopClock()
    maxDepth = Math.max(maxDepth, depth())
    if (engaged >= 1000 || maxDepth > sentDepth) {
      zeef('engagement', { url: pageUrl, sd: maxDepth, e: engaged })
      sentDepth = maxDepth
      engaged = 0
    }
  }

  window.addEventListener(
    'scroll',
    function () {
      maxDepth = Math.max(maxDepth, depth())
    },
    { passive: true }
  )
  document.addEventListener('visibilitychange', function () {
    if (document.visibilityState == 'hidden') report()
    else if (!since) since = Date.now()
  })
  window.addEventListener('pagehide', report)

  function newPage(url) {
    pageUrl = url
    maxDepth = 0
    sentDepth = -1
    since = document.visibilityState == 'visible' ? Date.now() : 0
  }
  window.addEventListener('popstate', function () {
    report()
    newPage(location.href)
  })

  // An SPA navigation ends the current page: report it before tracker.js counts the new one.
  var history = window.history
  ;['pushState', 'replaceState'].forEach(function (method) {
    var original = history[method]
    history[method] = function () {
      var args = arguments
      var next = new URL(args[2] || '', location.href)
      if (next.pathname != location.pathname) {
        report()
        newPage(next.href)
      }
      return original.apply(this, args)
    }
  })
})(window, document)
