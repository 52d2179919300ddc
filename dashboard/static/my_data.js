// The visitor's own data page (dashboard/templates/my_data.html, server/web/my_data.py).
// Reads the IDs from the fragment (#v=VISITOR&c=CONSENT&r=RETURN, made by consent.js's
// zeefConsent.myDataUrl()) and POSTs them as JSON to this page's endpoints. No cookie, no
// storage: the IDs live in this page's address and memory only.
;(function () {
  'use strict'
  const root = document.getElementById('my-data')
  if (!root) return
  const $ = (id) => document.getElementById(id)
  const fragment = new URLSearchParams(location.hash.slice(1))
  const ids = { visitor: fragment.get('v') || null, consent: fragment.get('c') || null }
  const site = root.dataset.site
  const status = $('status')

  // In the card the buttons are in, or (before it shows) in the first one.
  function say(text, kind, where) {
    const place = where || status
    place.textContent = text
    place.className = 'message message-' + (kind || 'info')
    place.hidden = !text
  }

  function post(action) {
    return fetch(root.dataset.base + '/' + action + location.search, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(ids),
      credentials: 'omit',
      cache: 'no-store',
    }).then((response) => {
      if (!response.ok) throw new Error(String(response.status))
      return response
    })
  }

  // Back to the page the visitor came from, if it is on the site (or a subdomain of it);
  // else the site's home page. The banner there reads #zeef-withdrawn.
  function returnUrl() {
    try {
      const back = new URL(fragment.get('r') || '')
      const host = back.hostname
      if (/^https?:$/.test(back.protocol) && (host == site || host.endsWith('.' + site)))
        return back.origin + back.pathname + '#zeef-withdrawn'
    } catch (e) {}
    return 'https://' + site + '/#zeef-withdrawn'
  }

  function show(summary) {
    const counts = summary.counts
    $('count-events').textContent = counts.events
    $('count-visits').textContent = counts.visits
    $('count-consent').textContent = counts.consent_records
    document.querySelectorAll('.span').forEach((node) => (node.hidden = !summary.first_visit))
    if (summary.first_visit) {
      $('first-visit').textContent = new Date(summary.first_visit).toLocaleString()
      $('last-visit').textContent = new Date(summary.last_visit).toLocaleString()
    }
    // Only what applies: nothing left to erase, or no consent in force to withdraw.
    $('erase').hidden = !ids.visitor || !(counts.events || counts.visits)
    const given = summary.consent || {}
    $('withdraw').hidden =
      !ids.consent || !Object.keys(given).some((category) => category != 'necessary' && given[category])
    const any = Object.keys(counts).some((table) => counts[table])
    $('download').hidden = !any
    const buttons = $('actions').querySelectorAll('button')
    $('actions').hidden = Array.from(buttons).every((button) => button.hidden)
    $('found').hidden = false
    return any
  }

  function refresh() {
    return post('summary')
      .then((response) => response.json())
      .then(show)
  }

  function failed() {
    say(root.dataset.failed, 'error')
  }

  if (!ids.visitor && !ids.consent) {
    $('no-id').hidden = false
    return
  }
  const loading = $('loading')
  say(root.dataset.loading, 'info', loading)
  refresh()
    .then((any) => {
      say('', 'info', loading)
      if (!any) say(root.dataset.nothing)
    })
    .catch(() => say(root.dataset.failed, 'error', loading))

  $('download').addEventListener('click', () => {
    post('export')
      .then((response) => response.blob())
      .then((blob) => {
        const link = document.createElement('a')
        link.href = URL.createObjectURL(blob)
        link.download = 'zeef-data-' + site + '.json'
        document.body.append(link)
        link.click()
        link.remove()
        setTimeout(() => URL.revokeObjectURL(link.href), 10000)
        say(root.dataset.downloaded, 'success')
      })
      .catch(failed)
  })

  function confirming(panel, open) {
    $(panel).hidden = !open
    if (open) {
      say('')
      $(panel).querySelector('button').focus()
    }
  }

  $('erase').addEventListener('click', () => confirming('confirm', true))
  $('cancel').addEventListener('click', () => confirming('confirm', false))
  $('confirm-erase').addEventListener('click', () => {
    confirming('confirm', false)
    post('erase')
      .then(refresh)
      .then(() => say(root.dataset.erased, 'success'))
      .catch(failed)
  })

  $('withdraw').addEventListener('click', () => confirming('confirm-withdraw', true))
  $('cancel-withdraw').addEventListener('click', () => confirming('confirm-withdraw', false))
  $('confirm-withdraw-yes').addEventListener('click', () => {
    confirming('confirm-withdraw', false)
    post('withdraw')
      .then(refresh)
      .then(() => {
        say(root.dataset.withdrawn, 'success')
        $('return-link').href = returnUrl()
        $('return').hidden = false
      })
      .catch(failed)
  })
})()
