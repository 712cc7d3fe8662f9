// Whole-file digests with tus-js-client: the client adds `Repr-Digest` (RFC 9530) to the
// creation request in `onBeforeRequest`, and the server proves the assembled file against it,
// across a resumption and through `parallelUploads` (concatenation: the digest goes on the
// final upload). Checked over HTTP only, so it runs on any store (`TUS_SERVER_ARGS`).
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { after, before, describe, test } from 'node:test'

import tus from 'tus-js-client'

import { MiB, download, head, random, sha256, sleep, startTusServer } from '../lib/helpers.mjs'

const TEST_TIMEOUT = 120_000

/** `Repr-Digest` of `bytes`. */
function reprDigest(bytes) {
  return `sha-256=:${createHash('sha256').update(bytes).digest('base64')}:`
}

/**
 * Uploads `bytes`, declaring `declared` on the creation POST (the final one with parallel
 * uploads). Resolves `{ url, completing }` (the last PATCH's response headers), or rejects with
 * tus-js-client's error.
 */
function upload(bytes, declared, options = {}) {
  let completing = null
  return new Promise((resolve, reject) => {
    const up = new tus.Upload(bytes, {
      retryDelays: [],
      chunkSize: 4 * MiB,
      ...options,
      onBeforeRequest(req) {
        const concat = req.getHeader('Upload-Concat')
        if (req.getMethod() === 'POST' && !(concat === 'partial')) req.setHeader('Repr-Digest', declared)
        return options.onBeforeRequest?.(req, up)
      },
      onAfterResponse(req, res) {
        if (req.getMethod() === 'PATCH' || req.getMethod() === 'POST') {
          completing = { status: res.getStatus(), reprDigest: res.getHeader('Repr-Digest') }
        }
        return options.onAfterResponse?.(req, res, up)
      },
      onSuccess: () => resolve({ url: up.url, completing }),
      onError: (err) => reject(err),
    })
    up.start()
  })
}

/** The upload's `HEAD` once it has a verdict (`Upload-State` other than `processing`). */
async function verdict(url) {
  const deadline = Date.now() + 20_000
  for (;;) {
    const res = await head(url)
    const state = res.headers.get('upload-state')
    if (state && state !== 'processing') return res
    if (Date.now() > deadline) throw new Error(`no verdict for ${url} (state ${state})`)
    await sleep(50)
  }
}

describe('whole-file digests with tus-js-client', { timeout: 10 * 60_000 }, () => {
  let server
  before(async () => {
    server = await startTusServer('digest')
  })
  after(async () => {
    await server?.stop()
  })

  for (const protocol of ['tus-v1', 'ietf-draft-05']) {
    test(`${protocol}: a right digest is proven and told back; the file is served`, { timeout: TEST_TIMEOUT }, async () => {
      const bytes = random(10 * MiB + 17)
      const { url, completing } = await upload(bytes, reprDigest(bytes), { endpoint: server.endpoint, protocol })
      assert.equal(completing.reprDigest, reprDigest(bytes), 'the completing response tells the stored digest')
      const res = await verdict(url)
      assert.equal(res.headers.get('upload-state'), 'clean')
      assert.equal(res.headers.get('repr-digest'), reprDigest(bytes))
      assert.equal(sha256(await download(url)), sha256(bytes))
    })
  }

  test('a wrong digest fails the upload with 460 and the file is never served', { timeout: TEST_TIMEOUT }, async () => {
    const bytes = random(6 * MiB)
    const err = await upload(bytes, reprDigest(random(10)), { endpoint: server.endpoint }).then(
      () => assert.fail('the upload succeeded'),
      (e) => e,
    )
    assert.equal(err.originalResponse?.getStatus(), 460, String(err))
    assert.match(err.originalResponse.getBody(), /ERR_DIGEST_MISMATCH/)
    const url = err.originalRequest.getURL()
    const res = await head(url)
    assert.equal(res.headers.get('upload-state'), 'rejected')
    assert.equal(res.headers.get('repr-digest'), reprDigest(bytes), 'HEAD tells what was stored')
    const get = await fetch(url)
    assert.equal(get.status, 403)
  })

  test('created and half sent by another client, finished by tus-js-client: the whole file is proven', { timeout: TEST_TIMEOUT }, async () => {
    const bytes = random(12 * MiB + 5)
    // Another client (plain HTTP) declares the digest and sends the first 2 MiB...
    const created = await fetch(server.endpoint, {
      method: 'POST',
      headers: { 'Tus-Resumable': '1.0.0', 'Upload-Length': String(bytes.length), 'Repr-Digest': reprDigest(bytes) },
    })
    assert.equal(created.status, 201)
    const url = new URL(created.headers.get('location'), server.endpoint).href
    const first = await fetch(url, {
      method: 'PATCH',
      headers: { 'Tus-Resumable': '1.0.0', 'Upload-Offset': '0', 'Content-Type': 'application/offset+octet-stream' },
      body: bytes.subarray(0, 2 * MiB),
    })
    assert.equal(first.status, 204)
    // ...and tus-js-client resumes it (no POST, so no Repr-Digest of its own).
    const { completing } = await upload(bytes, 'unused', { endpoint: server.endpoint, uploadUrl: url })
    assert.equal(completing.reprDigest, reprDigest(bytes))
    assert.equal((await verdict(url)).headers.get('upload-state'), 'clean')
  })

  for (const [what, rightDigest, state] of [['right', true, 'clean'], ['wrong', false, 'rejected']]) {
    test(`parallelUploads: 4 with a ${what} digest on the final upload: ${state}`, { timeout: TEST_TIMEOUT }, async () => {
      const bytes = random(8 * MiB + 3)
      const declared = rightDigest ? reprDigest(bytes) : reprDigest(random(5))
      const { url } = await upload(bytes, declared, { endpoint: server.endpoint, parallelUploads: 4, chunkSize: 1 * MiB })
      const res = await verdict(url)
      assert.equal(res.headers.get('upload-state'), state)
      assert.equal(res.headers.get('repr-digest'), reprDigest(bytes))
    })
  }
})
