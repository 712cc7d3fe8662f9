// Bundles examples/uppy/web/main.js (Uppy from this directory's node_modules) into
// examples/uppy/dist/app.js + app.css with esbuild. No CDN: the page runs offline.
// Usage: node conformance-tests/clients/scripts/build-uppy.mjs (after `npm ci` here).
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const here = path.dirname(fileURLToPath(import.meta.url))
const clients = path.resolve(here, '..')
export const repo = path.resolve(clients, '../..')
export const uppyDist = path.join(repo, 'examples/uppy/dist')

async function loadEsbuild() {
  try {
    return await import('esbuild')
  } catch (e) {
    throw new Error(`esbuild is missing: run \`npm ci\` in ${clients} (${e.message})`)
  }
}

/** Builds the bundle; resolves to the dist directory. */
export async function buildUppy() {
  const esbuild = await loadEsbuild()
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

/**
 * Bundles the direct-to-S3 test page's script (web/direct-s3.js: @uppy/core + @uppy/aws-s3) in
 * memory (nothing is written); resolves to the JavaScript text.
 */
export async function bundleDirectS3Page() {
  const esbuild = await loadEsbuild()
  const result = await esbuild.build({
    entryPoints: [path.join(clients, 'web/direct-s3.js')],
    nodePaths: [path.join(clients, 'node_modules')],
    bundle: true,
    format: 'iife',
    platform: 'browser',
    target: ['chrome120'],
    minify: false,
    sourcemap: false,
    write: false,
    logLevel: 'warning',
  })
  return result.outputFiles[0].text
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const dir = await buildUppy()
  console.log(`bundled Uppy into ${dir}`)
}
