// Minifies the tracker and consent banner sources into server/static/, which is what Zeef
// serves and what the size budgets are measured on; the banner's texts are copied as they are,
// so they are package data and a wheel carries them. `npm run build`; `node build-tracker.mjs
// --check` exits 1 when the committed files differ from a fresh build.
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { dirname } from 'node:path'
import { gzipSync } from 'node:zlib'
import { minify } from 'terser'

const files = {
  'tracker.js': 'server/static/tracker.js',
  'tracker-auto.js': 'server/static/tracker-auto.js',
  'consent/consent.js': 'server/static/consent.js',
  'consent/consent.css': 'server/static/consent.css',
  'consent/i18n/en.json': 'server/static/i18n/en.json',
  'consent/i18n/nl.json': 'server/static/i18n/nl.json',
  'consent/i18n/es.json': 'server/static/i18n/es.json',
}

async function minifyJs(code) {
  const result = await minify(code, {
    ecma: 2017,
    compress: { passes: 3, unsafe: true },
    mangle: true,
    format: { comments: false },
  })
  return result.code
}

// A deliberately small CSS minifier: comments and whitespace only. It never touches spaces
// before ':' (".a :focus" is not ".a:focus") or around '+' and '-' (calc() needs them), and
// consent.css has no strings for it to break.
function minifyCss(code) {
  return code
    .replace(/\/\*[\s\S]*?\*\//g, '')
    .replace(/\s+/g, ' ')
    .replace(/ ?([{};,>]) ?/g, '$1')
    .replace(/: /g, ':')
    .replace(/;}/g, '}')
    .trim()
}

const check = process.argv.includes('--check')
let stale = 0
for (const [source, target] of Object.entries(files)) {
  const code = await readFile(source, 'utf8')
  const built = source.endsWith('.json')
    ? code
    : (source.endsWith('.css') ? minifyCss(code) : await minifyJs(code)) + '\n'
  if (check) {
    const committed = await readFile(target, 'utf8').catch(() => '')
    if (committed !== built) {
      console.error(`${target} is stale: run npm run build`)
      stale = 1
    }
  } else {
    await mkdir(dirname(target), { recursive: true })
    await writeFile(target, built)
    const gzipped = gzipSync(built, { level: 9 }).length
    console.log(`${target}: ${Buffer.byteLength(built)} bytes, ${gzipped} gzipped`)
  }
}
process.exit(stale)
