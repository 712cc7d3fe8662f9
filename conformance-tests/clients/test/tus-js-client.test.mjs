// tus-js-client (Node) against a spawned tus-server. Every check is over HTTP (HEAD, GET), so
// the same tests run on any store (`TUS_SERVER_ARGS` selects it).
import assert from 'node:assert/strict'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { Readable } from 'node:stream'
import { after, before, describe, test } from 'node:test'

import tus from 'tus-js-client'

import { MiB, download, head, parseMetadata, random, sha256, sleep, startTusServer } from '../lib/helpers.mjs'

const TEST_TIMEOUT = 120_000

/**
 * Runs one upload to completion (or until `opts.stopWhen` aborts it) and records every request
 * and response. Resolves `{ upload, url, requests, responses }`; rejects on error or after
 * `timeoutMs`.
 */
function runUpload(file, options, { timeoutMs = 90_000, prepare } = {}) {
  const requests = []
  const responses = []
  let upload
  const done = new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      upload.abort().catch(() => {})
      reject(new Error(`upload did not finish within ${timeoutMs} ms`))
    }, timeoutMs)
    upload = new tus.Upload(file, {
      retryDelays: [],
      ...options,
      onBeforeRequest(req) {
        requests.push({
          method: req.getMethod(),
          url: req.getURL(),
          uploadOffset: req.getHeader('Upload-Offset'),
          uploadLength: req.getHeader('Upload-Length'),
          deferLength: req.getHeader('Upload-Defer-Length'),
          uploadConcat: req.getHeader('Upload-Concat'),
          contentType: req.getHeader('Content-Type'),
        })
        return options.onBeforeRequest?.(req)
      },
      onAfterResponse(req, res) {
        responses.push({
          method: req.getMethod(),
          url: req.getURL(),
          status: res.getStatus(),
          uploadOffset: res.getHeader('Upload-Offset'),
        })
        return options.onAfterResponse?.(req, res)
      },
      onSuccess() {
        clearTimeout(timer)
        resolve({ upload, url: upload.url, requests, responses })
      },
      onError(err) {
        clearTimeout(timer)
        reject(err)
      },
    })
    prepare?.(upload, { resolve: (v) => (clearTimeout(timer), resolve(v)), reject, requests, responses })
    if (!prepare) upload.start()
  })
  return done
}

/** Asserts that `url` holds exactly `bytes` (HEAD offsets and GET sha256). */
async function assertStored(url, bytes) {
  const res = await head(url)
  assert.equal(res.status, 200, `HEAD ${url}`)
  assert.equal(res.headers.get('upload-offset'), String(bytes.length), 'HEAD Upload-Offset')
  assert.equal(res.headers.get('upload-length'), String(bytes.length), 'HEAD Upload-Length')
  const got = await download(url)
  assert.equal(got.length, bytes.length, 'GET length')
  assert.equal(sha256(got), sha256(bytes), 'GET bytes differ from the uploaded ones (sha256)')
  return res
}

describe('tus-js-client', { timeout: 15 * 60_000 }, () => {
  let server
  before(async () => {
    server = await startTusServer('tus-js-client')
  })
  after(async () => {
    await server?.stop()
  })

  test('50 MiB in 8 MiB chunks with non-Latin and empty metadata values', { timeout: TEST_TIMEOUT }, async () => {
    const size = 50 * MiB
    const bytes = random(size)
    let lastProgress = 0
    const metadata = { filename: 'sun.bin', filetype: 'application/octet-stream', title: 'słońce', empty: '' }
    const { url, requests } = await runUpload(bytes, {
      endpoint: server.endpoint,
      chunkSize: 8 * MiB,
      metadata,
      onProgress(sent) {
        lastProgress = sent
      },
    })
    const patches = requests.filter((r) => r.method === 'PATCH')
    assert.deepEqual(
      patches.map((p) => Number(p.uploadOffset)),
      [0, 1, 2, 3, 4, 5, 6].map((i) => i * 8 * MiB),
      'one PATCH per 8 MiB chunk, in order',
    )
    assert.equal(lastProgress, size)
    const res = await assertStored(url, bytes)
    assert.deepEqual(parseMetadata(res.headers.get('upload-metadata')), metadata, 'HEAD Upload-Metadata decoded')
  })

  test('deferred length from a Node stream', { timeout: TEST_TIMEOUT }, async () => {
    // Not a multiple of chunkSize: tus-js-client 4.3.1 hangs forever when a deferred-length
    // stream ends exactly on a chunk boundary (its readChunk waits for 'readable' after 'end';
    // tus/tus-js-client#779, unfixed in 4.3.1), before sending anything to the server.
    for (const size of [10 * MiB + 12345, 2 * MiB - 1]) {
      const bytes = random(size)
      const stream = Readable.from(
        (function* () {
          for (let i = 0; i < size; i += 100_000) yield bytes.subarray(i, Math.min(i + 100_000, size))
        })(),
        { objectMode: false },
      )
      const { url, requests } = await runUpload(stream, {
        endpoint: server.endpoint,
        chunkSize: 2 * MiB,
        uploadLengthDeferred: true,
        metadata: { filename: `stream-${size}.bin` },
      })
      const post = requests.find((r) => r.method === 'POST')
      assert.equal(post.deferLength, '1', 'POST sent Upload-Defer-Length: 1')
      assert.equal(post.uploadLength, undefined, 'POST sent no Upload-Length')
      const declaring = requests.filter((r) => r.method === 'PATCH' && r.uploadLength !== undefined)
      assert.deepEqual(
        declaring.map((r) => r.uploadLength),
        [String(size)],
        'exactly one PATCH declared the length',
      )
      const res = await assertStored(url, bytes)
      assert.equal(res.headers.get('upload-defer-length'), null, 'no Upload-Defer-Length once the length is known')
    }
  })

  test('parallelUploads: 4 (concatenation)', { timeout: TEST_TIMEOUT }, async () => {
    const size = 20 * MiB + 3
    const bytes = random(size)
    const metadata = { filename: 'parallel.bin', title: 'słońce' }
    const { url, requests } = await runUpload(bytes, {
      endpoint: server.endpoint,
      parallelUploads: 4,
      chunkSize: 2 * MiB,
      metadata,
    })
    const posts = requests.filter((r) => r.method === 'POST')
    assert.equal(posts.filter((r) => r.uploadConcat === 'partial').length, 4, 'four partial uploads created')
    const finals = posts.filter((r) => r.uploadConcat?.startsWith('final;'))
    assert.equal(finals.length, 1, 'one final upload created')
    assert.equal(finals[0].uploadConcat.slice('final;'.length).trim().split(/\s+/).length, 4, 'final lists 4 partials')

    const res = await assertStored(url, bytes)
    const concat = res.headers.get('upload-concat')
    assert.ok(concat?.startsWith('final;'), `HEAD of the final upload: Upload-Concat ${concat}`)
    assert.equal(concat.slice('final;'.length).trim().split(/\s+/).length, 4)
    assert.deepEqual(parseMetadata(res.headers.get('upload-metadata')), metadata)
    // Every partial holds its share, and together they are the file.
    const partUrls = concat.slice('final;'.length).trim().split(/\s+/)
    const parts = []
    for (const part of partUrls) {
      const h = await head(part)
      assert.equal(h.status, 200, `HEAD partial ${part}`)
      assert.equal(h.headers.get('upload-concat'), 'partial')
      parts.push(await download(part))
    }
    assert.equal(sha256(Buffer.concat(parts)), sha256(bytes), 'partials concatenated are the file')
  })

  test('aborted half-way, resumed from the stored fingerprint at the server offset', { timeout: TEST_TIMEOUT }, async (t) => {
    const size = 16 * MiB
    const bytes = random(size)
    const storageDir = fs.mkdtempSync(path.join(os.tmpdir(), 'tus-url-storage-'))
    const urlStorage = new tus.FileUrlStorage(path.join(storageDir, 'urls.json'))
    try {
      // First attempt: abort (without terminating) once 60 % went out, mid-PATCH.
      const first = await runUpload(
        bytes,
        { endpoint: server.endpoint, chunkSize: 4 * MiB, urlStorage },
        {
          prepare(upload, { resolve, requests }) {
            let aborted = false
            let accepted = 0
            upload.options.onChunkComplete = (_chunk, bytesAccepted) => {
              accepted = bytesAccepted
            }
            upload.options.onProgress = (sent) => {
              if (!aborted && sent >= 0.6 * size) {
                aborted = true
                const acceptedAtAbort = accepted
                upload.abort(false).then(() => resolve({ url: upload.url, requests, acceptedAtAbort }))
              }
            }
            upload.start()
          },
        },
      )
      assert.ok(first.url, 'the first attempt created an upload')

      // The server's offset, once stable (the cut-off PATCH saves what it received).
      let offset = -1
      for (let i = 0; i < 50; i++) {
        const res = await head(first.url)
        assert.equal(res.status, 200)
        const now = Number(res.headers.get('upload-offset'))
        if (now === offset) break
        offset = now
        await sleep(200)
      }
      assert.ok(offset >= 8 * MiB && offset < size, `server offset after the abort: ${offset}`)
      t.diagnostic(
        `server offset after the abort: ${offset} of ${size}; the client had seen ${first.acceptedAtAbort} acknowledged`,
      )

      // Second attempt: a new Upload finds the stored URL by fingerprint and resumes.
      const second = await runUpload(
        bytes,
        { endpoint: server.endpoint, chunkSize: 4 * MiB, urlStorage },
        {
          prepare(upload, { reject }) {
            upload
              .findPreviousUploads()
              .then((previous) => {
                assert.equal(previous.length, 1, 'one previous upload stored for this fingerprint')
                assert.equal(previous[0].uploadUrl, first.url)
                upload.resumeFromPreviousUpload(previous[0])
                upload.start()
              })
              .catch(reject)
          },
        },
      )
      assert.equal(second.url, first.url, 'resumed the same upload')
      assert.deepEqual(second.requests.filter((r) => r.method === 'POST'), [], 'no new upload created')
      assert.equal(second.requests[0].method, 'HEAD', 'asked the server for its offset first')
      const patches = second.requests.filter((r) => r.method === 'PATCH')
      assert.ok(patches.length > 0)
      assert.equal(Number(patches[0].uploadOffset), offset, 'first PATCH continues at the server offset, not 0')
      await assertStored(second.url, bytes)
    } finally {
      fs.rmSync(storageDir, { recursive: true, force: true })
    }
  })

  test('abort(true) terminates the upload', { timeout: TEST_TIMEOUT }, async () => {
    const size = 16 * MiB
    const bytes = random(size)
    const { url, requests, responses } = await runUpload(
      bytes,
      { endpoint: server.endpoint, chunkSize: 4 * MiB },
      {
        prepare(upload, { resolve, reject, requests, responses }) {
          let aborted = false
          upload.options.onChunkComplete = () => {
            if (aborted) return
            aborted = true
            // Terminate while the next PATCH may already be under way.
            upload
              .abort(true)
              .then(() => resolve({ url: upload.url, requests, responses }))
              .catch(reject)
          }
          upload.start()
        },
      },
    )
    assert.ok(url)
    const del = responses.find((r) => r.method === 'DELETE')
    assert.ok(del, `a DELETE was sent (requests: ${requests.map((r) => r.method).join(' ')})`)
    assert.equal(del.status, 204, 'DELETE answered 204')
    const res = await head(url)
    assert.ok([404, 410].includes(res.status), `HEAD after termination answered ${res.status}`)
    const get = await fetch(url, { signal: AbortSignal.timeout(10_000) })
    assert.ok([404, 410].includes(get.status), `GET after termination answered ${get.status}`)
  })

  test('uploadDataDuringCreation', { timeout: TEST_TIMEOUT }, async () => {
    const size = 3 * MiB + 5
    const bytes = random(size)
    const { url, requests, responses } = await runUpload(bytes, {
      endpoint: server.endpoint,
      chunkSize: 1 * MiB,
      uploadDataDuringCreation: true,
      metadata: { filename: 'creation-with-upload.bin' },
    })
    const post = requests.find((r) => r.method === 'POST')
    assert.equal(post.contentType, 'application/offset+octet-stream', 'POST carried data')
    const postRes = responses.find((r) => r.method === 'POST')
    assert.equal(postRes.status, 201)
    assert.equal(postRes.uploadOffset, String(1 * MiB), 'the server kept the first chunk sent with the POST')
    const patches = requests.filter((r) => r.method === 'PATCH')
    assert.deepEqual(
      patches.map((p) => Number(p.uploadOffset)),
      [1, 2, 3].map((i) => i * MiB),
    )
    await assertStored(url, bytes)

    // A file smaller than one chunk needs the POST only.
    const small = random(1000)
    const one = await runUpload(small, { endpoint: server.endpoint, uploadDataDuringCreation: true })
    assert.deepEqual(
      one.requests.map((r) => r.method),
      ['POST'],
      'a small file goes in the POST alone',
    )
    await assertStored(one.url, small)
  })

  // The IETF resumable-upload draft, as tus-js-client speaks it: 'ietf-draft-03' sends
  // Upload-Draft-Interop-Version 5, 'ietf-draft-05' sends 6 (application/partial-upload).
  for (const [protocol, interop] of [
    ['ietf-draft-03', '5'],
    ['ietf-draft-05', '6'],
  ]) {
    test(`protocol: '${protocol}' (interop version ${interop})`, { timeout: TEST_TIMEOUT }, async () => {
      const size = 5 * MiB + 777
      const bytes = random(size)
      const seen = []
      const { url, requests } = await runUpload(bytes, {
        endpoint: server.endpoint,
        protocol,
        chunkSize: 2 * MiB,
        onBeforeRequest(req) {
          seen.push({
            method: req.getMethod(),
            interop: req.getHeader('Upload-Draft-Interop-Version'),
            complete: req.getHeader('Upload-Complete'),
            tus: req.getHeader('Tus-Resumable'),
          })
        },
      })
      assert.ok(seen.length >= 3, 'creation and several appends')
      for (const r of seen) {
        assert.equal(r.interop, interop, `${r.method} speaks interop ${interop}`)
        assert.equal(r.tus, undefined, `${r.method} is not a tus v1 request`)
      }
      const patches = requests.filter((r) => r.method === 'PATCH')
      assert.deepEqual(
        patches.map((p) => Number(p.uploadOffset)),
        [0, 2 * MiB, 4 * MiB],
        'appends continue at the offsets the server reported',
      )
      if (interop === '6') {
        assert.ok(patches.every((p) => p.contentType === 'application/partial-upload'), 'interop 6 appends are partial-upload')
      }
      assert.equal(seen.at(-1).complete, '?1', 'the last append completes the upload')
      // The upload is an ordinary one on the server: tus HEAD and GET see it whole.
      await assertStored(url, bytes)
    })
  }
})
