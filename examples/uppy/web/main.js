// The page's script: Uppy's Dashboard and Tus plugin, bundled by
// conformance-tests/clients/scripts/build-uppy.mjs into examples/uppy/dist/app.js.
import Uppy from '@uppy/core'
import Dashboard from '@uppy/dashboard'
import Tus from '@uppy/tus'
import '@uppy/core/css/style.min.css'
import '@uppy/dashboard/css/style.min.css'

const endpoint = document.querySelector('meta[name="tus-endpoint"]').content
document.getElementById('endpoint').textContent = new URL(endpoint, location.href).href
document.getElementById('origin').textContent = location.origin
const status = document.getElementById('status')

// Optional settings in the URL's fragment (which browsers never send to a server), for a tus
// server with authentication (tus-server --auth-jwt-key-file):
//   #token=<JWT>       every tus request carries `Authorization: Bearer <JWT>`;
//   #withCredentials   cross-origin tus requests carry cookies (tus-server --auth-jwt-cookie,
//                      with --cors-allow-origin <this page's origin> --cors-allow-credentials).
// Both may be given: `#token=<JWT>&withCredentials`.
const settings = new URLSearchParams(location.hash.slice(1))
const token = settings.get('token')

const uppy = new Uppy({ autoProceed: false })
  .use(Dashboard, { inline: true, target: '#uppy', height: 360, proudlyDisplayPoweredByUppy: false })
  .use(Tus, {
    endpoint,
    chunkSize: 1024 * 1024,
    retryDelays: [0, 500, 1000],
    removeFingerprintOnSuccess: true,
    headers: token ? { Authorization: `Bearer ${token}` } : {},
    withCredentials: settings.has('withCredentials'),
  })

// What happened, for people (the status line) and for the browser tests (window.uploadLog).
const log = { progress: 0, maxProgress: 0, successes: [], errors: [], complete: null }
window.uppy = uppy
window.uploadLog = log

uppy.on('progress', (progress) => {
  log.progress = progress
  log.maxProgress = Math.max(log.maxProgress, progress)
  status.textContent = `progress ${progress} %`
})
uppy.on('upload-success', (file, response) => {
  log.successes.push({ name: file.name, size: file.size, uploadURL: response.uploadURL })
  status.textContent = `uploaded ${file.name} to ${response.uploadURL}`
})
uppy.on('upload-error', (file, error) => {
  log.errors.push({ name: file && file.name, message: String(error && error.message) })
  status.textContent = `upload of ${file && file.name} failed: ${error && error.message}`
})
uppy.on('complete', (result) => {
  log.complete = { successful: result.successful.length, failed: result.failed.length }
})
