// Minifies the tracker sources into server/static/, which is what Zeef serves and what the
// size budget is measured on. `npm run build`; `node build-tracker.mjs --check` exits 1 when
// the committed files differ from a fresh build.
import { readFile, writeFile } from 'node:fs/promises'
import { minify } from 'terser'

const files = { 'tracker.js': 'server/static/tracker.js', 'tracker-auto.js': 'server/static/tracker-auto.js' }
const check = process.argv.includes('--check')
let stale = 0
for (const [source, target] of Object.entries(files)) {
  const code = await readFile(source, 'utf8')
  const result = await minify(code, {
    ecma: 2017,
    compress: { passes: 3, unsafe: true },
    mangle: true,
    format: { comments: false },
  })
  const built = result.code + '\n'
  if (check) {
    const committed = await readFile(target, 'utf8').catch(() => '')
    if (committed !== built) {
      console.error(`${target} is stale: run npm run build`)
      stale = 1
    }
  } else {
    await writeFile(target, built)
    console.log(`${target}: ${Buffer.byteLength(built)} bytes`)
  }
}
process.exit(stale)
