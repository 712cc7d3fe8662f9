// Bundles examples/uppy/web/main.js (Uppy from this directory's node_modules) into
// examples/uppy/dist/app.js + app.css with esbuild. No CDN: the page runs offline.
// Usage: node conformance-tests/clients/scripts/build-uppy.mjs (after `npm ci` here).
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const here = path.dirname(fileURLToPath(import.meta.url))
const clients = path.resolve(here, '..')
export const repo = path.resolve(clients, '../..')
export const uppyDist = path.join(repo, 'examples/uppy/dist')

/** Builds the bundle; resolves to the dist directory. */
export async function buildUppy() {
  let esbuild
  try {
    esbuild = await import('esbuild')
  } catch (e) {
    throw new Error(`esbuild is missing: run \`npm ci\` in ${clients} (${e.message})`)
  }
  await esbuild.build({
    entryPoints: { app: path.join(repo, 'examples/uppy/web/main.js') },
    nodePaths: [path.join(clients, 'node_modules')],
    bundle: true,
    format: 'iife',
    platform: 'browser',
    target: ['chrome120'],
    minify: true,
    sourcemap: false,
    outdir: uppyDist,
    logLevel: 'warning',
  })
  return uppyDist
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const dir = await buildUppy()
  console.log(`bundled Uppy into ${dir}`)
}
