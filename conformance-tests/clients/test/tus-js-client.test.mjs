// tus-js-client (Node) against a spawned tus-server. Every check is over HTTP (HEAD, GET), so
// the same tests run on any store (`TUS_SERVER_ARGS` selects it). The second suite runs the
// client against a server with JWT authentication (`--auth-jwt-key-file`), tokens minted here.
import assert from 'node:assert/strict'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { Readable } from 'node:stream'
import { after, before, describe, test } from 'node:test'

import tus from 'tus-js-client'

import {
  MiB,
  bearer,
  download,
  head,
  keyDir,
  mintToken,
  newSecret,
  octJwks,
  parseMetadata,
  random,
  sha256,
  sleep,
  startTusServer,
} from '../lib/helpers.mjs'

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
          authorization: req.getHeader('Authorization'),
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

/** Asserts that `url` holds exactly `bytes` (HEAD offsets and GET sha256), asking with `headers`. */
async function assertStored(url, bytes, headers = {}) {
  const res = await head(url, headers)
  assert.equal(res.status, 200, `HEAD ${url}`)
  assert.equal(res.headers.get('upload-offset'), String(bytes.length), 'HEAD Upload-Offset')
  assert.equal(res.headers.get('upload-length'), String(bytes.length), 'HEAD Upload-Length')
  const got = await download(url, headers)
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

/** The upload's offset once two HEADs 200 ms apart agree (a cut-off PATCH saves what it got). */
async function settledOffset(url, headers = {}) {
  let offset = -1
  for (let i = 0; i < 50; i++) {
    const res = await head(url, headers)
    assert.equal(res.status, 200, `HEAD ${url}`)
    const now = Number(res.headers.get('upload-offset'))
    if (now === offset) return offset
    offset = now
    await sleep(200)
  }
  throw new Error(`the offset of ${url} did not settle (last ${offset})`)
}

/**
 * Starts an upload of `bytes` and aborts it (without terminating) once the server acknowledged
 * `stopAfter` bytes; resolves `{ url, offset }` with the server's settled offset.
 */
async function uploadPart(bytes, options, stopAfter) {
  const { url } = await runUpload(bytes, options, {
    prepare(upload, { resolve, reject }) {
      let aborted = false
      upload.options.onChunkComplete = (_chunk, accepted) => {
        if (aborted || accepted < stopAfter) return
        aborted = true
        upload
          .abort(false)
          .then(() => resolve({ url: upload.url }))
          .catch(reject)
      }
      upload.start()
    },
  })
  assert.ok(url, 'the upload was created')
  const offset = await settledOffset(url, options.headers)
  assert.ok(offset >= stopAfter && offset < bytes.length, `server offset after the abort: ${offset}`)
  return { url, offset }
}

/** Resolves the error the upload ends with; fails if it succeeds instead. */
async function uploadError(file, options) {
  const requests = []
  const err = await runUpload(file, {
    ...options,
    onBeforeRequest(req) {
      requests.push(req.getMethod())
    },
  }).then(
    ({ url }) => assert.fail(`the upload was expected to fail, but it succeeded at ${url}`),
    (e) => e,
  )
  assert.ok(err instanceof tus.DetailedError, `a DetailedError: ${err}`)
  assert.ok(err.originalResponse, `the error carries the server's response: ${err.message}`)
  return { err, status: err.originalResponse.getStatus(), method: err.originalRequest.getMethod(), requests }
}

// Authentication: `Authorization: Bearer <HS256 JWT>` on every request, in tus 1.0 and the IETF
// draft; uploads belong to the token's `sub`.
describe('tus-js-client with JWT authentication', { timeout: 15 * 60_000 }, () => {
  let server
  let keys
  let secret
  const token = (sub, claims = {}) => mintToken(secret, { sub, ...claims })

  before(async () => {
    keys = keyDir()
    secret = newSecret()
    // The secret file ends with a newline, which the server ignores.
    const keyFile = keys.write('hs256.key', `${secret}\n`)
    server = await startTusServer('tus-js-client-auth', ['--auth-jwt-key-file', keyFile])
  })
  after(async () => {
    await server?.stop()
    keys?.remove()
  })

  for (const [label, protocol] of [
    ['tus 1.0', undefined],
    ['ietf-draft-05', 'ietf-draft-05'],
  ]) {
    const proto = protocol ? { protocol } : {}

    test(`${label}: headers: { Authorization } uploads; the bytes GET back with the token`, { timeout: TEST_TIMEOUT }, async () => {
      const bytes = random(5 * MiB + 99)
      const alice = bearer(token('alice'))
      const { url, requests } = await runUpload(bytes, {
        endpoint: server.endpoint,
        ...proto,
        chunkSize: 2 * MiB,
        headers: alice,
        metadata: { filename: 'secret.bin' },
      })
      assert.deepEqual(requests.map((r) => r.method), ['POST', 'PATCH', 'PATCH', 'PATCH'], 'a creation and three appends')
      for (const r of requests) assert.equal(r.authorization, alice.Authorization, `${r.method} carried the token`)
      await assertStored(url, bytes, alice)
      // Without the token, or with another subject's, the upload is not there.
      assert.equal((await head(url)).status, 401, 'HEAD without a token')
      assert.equal((await fetch(url, { signal: AbortSignal.timeout(10_000) })).status, 401, 'GET without a token')
      assert.equal((await head(url, bearer(token('bob')))).status, 404, "HEAD with bob's token")
      const bobGet = await fetch(url, { headers: bearer(token('bob')), signal: AbortSignal.timeout(10_000) })
      assert.equal(bobGet.status, 404, "GET with bob's token")
    })

    // tus 1.0 only: in the draft modes tus-js-client still sends `Upload-Metadata`, but the
    // server takes an IETF upload's metadata from the creation's Content-Type and
    // Content-Disposition (which tus-js-client does not send), so no `filetype` is stored.
    if (!protocol) {
      const title = `${label}: filetype application/octet-stream (what browsers declare for unknown files) downloads`
      test(title, { timeout: TEST_TIMEOUT }, async () => {
        // With authentication on, every finished upload goes through the content check; the
        // generic type must not be taken for a claim that random content contradicts.
        const bytes = random(MiB + 1)
        const alice = bearer(token('alice'))
        const metadata = { filename: 'data.bin', filetype: 'application/octet-stream' }
        const { url } = await runUpload(bytes, { endpoint: server.endpoint, headers: alice, metadata })
        const res = await assertStored(url, bytes, alice)
        assert.deepEqual(parseMetadata(res.headers.get('upload-metadata')), metadata)
      })
    }

    test(`${label}: without a valid token the client fails with the server's 401`, { timeout: TEST_TIMEOUT }, async () => {
      const bytes = random(1000)
      const cases = [
        ['no token', {}, null],
        ['expired token', bearer(token('alice', { exp: Math.floor(Date.now() / 1000) - 3600 })), 'expired'],
        ['token signed with another secret', bearer(mintToken(newSecret(), { sub: 'alice' })), 'bad_signature'],
      ]
      for (const [what, headers, reason] of cases) {
        const { err, status, method, requests } = await uploadError(bytes, { endpoint: server.endpoint, ...proto, headers })
        assert.equal(status, 401, `${what}: status the client surfaced (${err.message})`)
        assert.equal(method, 'POST', `${what}: the creation was refused`)
        assert.deepEqual(requests, ['POST'], `${what}: no retry, nothing else sent`)
        assert.match(err.message, /response code: 401/, `${what}: the message names the status`)
        const challenge = err.originalResponse.getHeader('WWW-Authenticate')
        assert.ok(challenge?.startsWith('Bearer'), `${what}: WWW-Authenticate ${challenge}`)
        if (reason) assert.ok(challenge.includes(reason), `${what}: WWW-Authenticate names ${reason}: ${challenge}`)
      }
    })

    test(`${label}: another subject's token cannot resume the owner's upload`, { timeout: TEST_TIMEOUT }, async () => {
      const bytes = random(6 * MiB + 5)
      const alice = bearer(token('alice'))
      const bob = bearer(token('bob'))
      const first = await uploadPart(bytes, { endpoint: server.endpoint, ...proto, chunkSize: 2 * MiB, headers: alice }, 2 * MiB)

      // With only the upload URL, bob's client gets the 404 of an upload that does not exist.
      const denied = await uploadError(bytes, { uploadUrl: first.url, ...proto, headers: bob })
      assert.equal(denied.status, 404, `bob resuming alice's URL: ${denied.err.message}`)
      assert.equal(denied.method, 'HEAD')
      assert.deepEqual(denied.requests, ['HEAD'], 'nothing but the offset request was sent')

      // With an endpoint too, the client takes the 404 as "gone" and starts over: a new upload of bob's.
      const bobs = await runUpload(bytes, { endpoint: server.endpoint, uploadUrl: first.url, ...proto, chunkSize: 2 * MiB, headers: bob })
      assert.deepEqual(
        bobs.responses.slice(0, 2).map((r) => [r.method, r.status]),
        [
          ['HEAD', 404],
          ['POST', 201],
        ],
        'HEAD of alice\'s URL answered 404, then the client created a new upload',
      )
      assert.notEqual(bobs.url, first.url, 'bob got an upload of his own')
      assert.equal(Number(bobs.requests.find((r) => r.method === 'PATCH').uploadOffset), 0, 'bob started at 0')
      await assertStored(bobs.url, bytes, bob)
      assert.equal((await head(bobs.url, alice)).status, 404, "alice cannot see bob's upload either")

      // Alice's upload is untouched, and she resumes it where it stopped.
      const res = await head(first.url, alice)
      assert.equal(res.status, 200)
      assert.equal(Number(res.headers.get('upload-offset')), first.offset, "alice's offset is unchanged")
      const resumed = await runUpload(bytes, { uploadUrl: first.url, ...proto, chunkSize: 2 * MiB, headers: alice })
      assert.equal(resumed.url, first.url)
      assert.equal(resumed.requests[0].method, 'HEAD')
      assert.equal(Number(resumed.requests.find((r) => r.method === 'PATCH').uploadOffset), first.offset, 'resumed at the offset')
      await assertStored(first.url, bytes, alice)
    })
  }

  test("keys rotated by kid: JWKS with 'old' and 'new', then 'new' alone after a restart", { timeout: TEST_TIMEOUT }, async () => {
    const rotation = keyDir()
    const oldSecret = newSecret()
    const newKey = newSecret()
    const jwks = rotation.write('jwks.json', octJwks({ old: oldSecret, new: newKey }))
    const uploadDir = fs.mkdtempSync(path.join(os.tmpdir(), 'tus-clients-rotation-'))
    let rotating
    try {
      rotating = await startTusServer('tus-js-client-rotation', ['--auth-jwt-key-file', jwks], { uploadDir })
      const endpoint = rotating.endpoint
      const viaOld = bearer(mintToken(oldSecret, { sub: 'carol' }, { kid: 'old' }))
      const viaNew = bearer(mintToken(newKey, { sub: 'carol' }, { kid: 'new' }))

      // Both keys verify their own tokens; a kid picks its key (old's kid, new's signature: refused).
      const small = random(3000)
      const byNew = await runUpload(small, { endpoint, headers: viaNew })
      await assertStored(byNew.url, small, viaNew)
      const mixed = await uploadError(small, { endpoint, headers: bearer(mintToken(newKey, { sub: 'carol' }, { kid: 'old' })) })
      assert.equal(mixed.status, 401, "kid 'old' signed with the new key")
      const unknown = await uploadError(small, { endpoint, headers: bearer(mintToken(newKey, { sub: 'carol' }, { kid: 'other' })) })
      assert.equal(unknown.status, 401, 'an unknown kid')
      assert.ok(unknown.err.originalResponse.getHeader('WWW-Authenticate').includes('unknown_key'))

      // Carol starts an upload with the old key's token; the same sub with the new key owns it too.
      const bytes = random(6 * MiB + 1)
      const part = await uploadPart(bytes, { endpoint, chunkSize: 2 * MiB, headers: viaOld }, 2 * MiB)
      assert.equal((await head(part.url, viaNew)).status, 200, 'the same sub through the new key sees it')

      // Rotate: the file holds 'new' only; keys are read at start, so restart on the same port and uploads.
      rotation.write('jwks.json', octJwks({ new: newKey }))
      await rotating.stop()
      rotating = await startTusServer('tus-js-client-rotation-restarted', ['--auth-jwt-key-file', jwks], {
        uploadDir,
        port: rotating.port,
      })
      assert.equal(rotating.endpoint, endpoint, 'restarted at the same endpoint')

      const refused = await head(part.url, viaOld)
      assert.equal(refused.status, 401, "the 'old' token after the rotation")
      assert.ok(refused.headers.get('www-authenticate').includes('unknown_key'), refused.headers.get('www-authenticate'))
      const oldResume = await uploadError(bytes, { uploadUrl: part.url, chunkSize: 2 * MiB, headers: viaOld })
      assert.equal(oldResume.status, 401, `tus-js-client resuming with the 'old' token: ${oldResume.err.message}`)
      assert.deepEqual(oldResume.requests, ['HEAD'])
      assert.equal(Number((await head(part.url, viaNew)).headers.get('upload-offset')), part.offset, 'the offset survived')

      const resumed = await runUpload(bytes, { uploadUrl: part.url, chunkSize: 2 * MiB, headers: viaNew })
      assert.equal(resumed.url, part.url)
      assert.deepEqual(resumed.requests.filter((r) => r.method === 'POST'), [], 'no new upload')
      assert.equal(resumed.requests[0].method, 'HEAD')
      assert.equal(Number(resumed.requests[1].uploadOffset), part.offset, "the 'new' token continues at the offset")
      await assertStored(part.url, bytes, viaNew)
      await assertStored(byNew.url, small, viaNew)
    } finally {
      await rotating?.stop()
      fs.rmSync(uploadDir, { recursive: true, force: true })
      rotation.remove()
    }
  })
})
