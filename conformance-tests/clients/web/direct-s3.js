// The page of test/direct-s3.test.mjs (bundled by scripts/build-uppy.mjs `bundleDirectS3Page`):
// Uppy core + the stock @uppy/aws-s3 plugin with `companionEndpoint` = tus-server's origin (the
// page's `#companion=` setting). Files come from the <input type=file> (the test picks them with
// playwright's setInputFiles), are added with `uppy.addFile` under a type the test chooses, and
// uploaded with `uppy.upload()`. Everything the test checks is kept in `window.direct`.
import AwsS3 from '@uppy/aws-s3'
import Uppy from '@uppy/core'

const MiB = 1024 * 1024
const settings = new URLSearchParams(window.location.hash.slice(1))
const companion = settings.get('companion')
const multipartAbove = Number(settings.get('multipartAbove') || 10 * MiB)
const chunkSize = Number(settings.get('chunkSize') || 5 * MiB)

const t0 = performance.now()
const now = () => Math.round(performance.now() - t0)

const state = {
  companion,
  picked: [],
  // Every fetch() of the page (the plugin's calls to the companion endpoint): method, url,
  // (JSON) request body, status, statusText and the start of the answer.
  calls: [],
  // Per file name: { id, size, type, progress: [[ms, bytes]], pauses: [...], success, error }.
  files: {},
  pageErrors: [],
}
window.direct = state

// The plugin calls `fetch` for the signing routes; record them (and their answers).
const realFetch = window.fetch.bind(window)
window.fetch = async (input, init = {}) => {
  const url = typeof input === 'string' ? input : input.url
  const call = { method: (init.method || 'GET').toUpperCase(), url, start: now(), status: null }
  if (typeof init.body === 'string') call.requestBody = init.body.slice(0, 4000)
  state.calls.push(call)
  try {
    const res = await realFetch(input, init)
    call.status = res.status
    call.statusText = res.statusText
    call.end = now()
    try {
      call.body = (await res.clone().text()).slice(0, 2000)
    } catch {
      // a body that cannot be read twice
    }
    return res
  } catch (e) {
    call.error = String(e)
    call.end = now()
    throw e
  }
}

const uppy = new Uppy({ autoProceed: false, allowMultipleUploadBatches: true })
uppy.use(AwsS3, {
  companionEndpoint: companion,
  shouldUseMultipart: (file) => file.size > multipartAbove,
  getChunkSize: () => chunkSize,
})
state.uppy = uppy

const byId = (id) => Object.values(state.files).find((f) => f.id === id)

uppy.on('upload-progress', (file, progress) => {
  const f = byId(file.id)
  if (!f) return
  f.progress.push([now(), progress.bytesUploaded])
  const plan = f.pausePlan
  if (plan && !plan.done && progress.bytesUploaded >= plan.atBytes) {
    plan.done = true
    pauseFor(file.id, f, plan.forMs)
  }
  render()
})
uppy.on('upload-pause', (file, isPaused) => {
  const f = file && byId(file.id)
  if (f) f.pauseEvents.push([now(), isPaused])
})
uppy.on('upload-success', (file, response) => {
  const f = byId(file.id)
  if (!f) return
  f.success = { at: now(), uploadURL: response.uploadURL, status: response.status, body: response.body }
  render()
})
uppy.on('upload-error', (file, error, response) => {
  const f = file && byId(file.id)
  if (!f) return
  f.error = { at: now(), message: String(error?.message || error), status: response?.status ?? null }
  render()
})

/** Pauses `id` (Uppy's pauseResume), asks the server for the upload's state while paused, resumes. */
function pauseFor(id, f, ms) {
  const pause = { at: now(), bytesAtPause: f.progress.at(-1)[1], paused: uppy.pauseResume(id) }
  f.pauses.push(pause)
  const key = uppy.getFile(id).s3Multipart?.key
  pause.key = key
  const uploadId = key && key.split('/').at(-1)
  setTimeout(async () => {
    // Still paused: no progress since, and the server reports it as uploading.
    pause.progressWhilePaused = f.progress.filter(([t]) => t > pause.at).length
    if (uploadId) {
      try {
        const res = await realFetch(`${companion}/s3/uploads/${encodeURIComponent(uploadId)}`)
        pause.serverSaid = { status: res.status, body: await res.json() }
      } catch (e) {
        pause.serverSaid = { error: String(e) }
      }
    }
    pause.resumedAt = now()
    pause.resumed = uppy.pauseResume(id) === false
  }, ms)
}

function render() {
  const rows = Object.entries(state.files).map(([name, f]) => {
    const bytes = f.progress.at(-1)?.[1] ?? 0
    const status = f.error ? `error: ${f.error.message}` : f.success ? 'uploaded' : `${bytes} / ${f.size} bytes`
    return `${name} (${f.type}, ${f.size} bytes): ${status}${f.pauses.length ? ` [paused at ${f.pauses[0].bytesAtPause}]` : ''}`
  })
  document.getElementById('status').textContent = rows.join('\n')
}

document.getElementById('files').addEventListener('change', (event) => {
  state.picked = [...event.target.files]
})

/**
 * Adds the picked files (`specs`: `[{ name, type, pauseAtBytes?, pauseForMs? }]`, `name` one of
 * the picked files' names) to Uppy and uploads them in one batch. Resolves once every file has
 * succeeded or failed (or after `timeoutMs`), with `state.files`.
 */
state.upload = async (specs, timeoutMs = 60_000) => {
  for (const spec of specs) {
    const picked = state.picked.find((p) => p.name === spec.name)
    if (!picked) throw new Error(`${spec.name} was not picked`)
    const id = uppy.addFile({ name: spec.name, type: spec.type, data: picked, source: 'test' })
    state.files[spec.name] = {
      id,
      size: picked.size,
      type: uppy.getFile(id).type,
      progress: [],
      pauses: [],
      pauseEvents: [],
      pausePlan: spec.pauseAtBytes ? { atBytes: spec.pauseAtBytes, forMs: spec.pauseForMs || 1000 } : null,
      success: null,
      error: null,
    }
  }
  render()
  const names = specs.map((s) => s.name)
  const settled = () => names.every((n) => state.files[n].success || state.files[n].error)
  uppy.upload().catch((e) => state.pageErrors.push(String(e)))
  const deadline = performance.now() + timeoutMs
  while (!settled() && performance.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  return JSON.parse(JSON.stringify(Object.fromEntries(names.map((n) => [n, state.files[n]]))))
}
