// Direct-to-S3 uploads with the stock @uppy/aws-s3 plugin (`companionEndpoint` = tus-server, which
// serves Companion's `/s3` signing routes with `--direct-s3`) in headless Debian Chromium: the
// bytes go from the browser straight to the S3 server, tus-server only signs, verifies and checks
// (type sniffing, clamd, promotion from tmp/ to prod/). Every scenario runs against moto
// (`TUS_TEST_MOTO_ENDPOINT`, required) and against s3s-fs (target/debug/examples/s3s_fs_server,
// started here; it verifies SigV4), one tus-server per S3 server, one clamd (EICAR-only database)
// for both.
//
// Neither S3 server answers browsers' CORS, so a small node proxy (lib/proxies.mjs) stands in front
// of each: tus-server is given the proxy as its `--s3-endpoint`, so every presigned URL points at
// it; it answers preflights, adds the CORS headers and forwards with `Host` unchanged. It also
// counts the bytes: the parts and forms must all pass it. The page reaches tus-server through a
// byte-counting TCP tap, which shows that no upload bytes went to tus-server.
//
// This file spawns its own tus-server with its own S3 flags and ignores `TUS_SERVER_ARGS`;
// scripts/test-all.sh runs it only in the filesystem pass of the client tests (TUS_SERVER_ARGS
// unset), not again in the S3 pass, where it would test nothing more.
// Screenshots and logs go to conformance-tests/artifacts/.
import assert from 'node:assert/strict'
import fs from 'node:fs'
import http from 'node:http'
import os from 'node:os'
import path from 'node:path'
import { after, before, describe, test } from 'node:test'

import { chromium } from 'playwright-core'

import { bundleDirectS3Page } from '../scripts/build-uppy.mjs'
import { startClamd, eicar } from '../lib/clamd.mjs'
import {
  CHROMIUM,
  CHROMIUM_FLAGS,
  MiB,
  artifacts,
  assertLoopback,
  fetchT,
  random,
  repo,
  sha256,
  sleep,
  startProcess,
  tusServerBin,
} from '../lib/helpers.mjs'
import { startS3CorsProxy, startTcpTap } from '../lib/proxies.mjs'

const S3S_FS_BIN = path.join(repo, 'target/debug/examples/s3s_fs_server')
const TEST_TIMEOUT = 60_000
/** The page's settings: multipart above 10 MiB, 5 MiB parts. */
const MULTIPART_ABOVE = 10 * MiB
const PART = 5 * MiB
/**
 * The proxy feeds the browser's PUT bodies (parts) to S3 at this rate, slow enough to pause
 * mid-part, and holds a part's last bytes this long to see whether the browser is still there.
 */
const PART_RATE = 12 * MiB
const HOLD_LAST_MS = 30
/** What the browser may send tus-server in one scenario (JSON signing calls; no upload bytes). */
const SIGNING_BYTES_MAX = 64 * 1024
const ALLOWED_TYPES = 'image/*,application/pdf,application/octet-stream,text/plain'
/** Credentials both S3 servers accept (s3s-fs checks them), whatever the caller's environment holds. */
const S3_ENV = {
  AWS_ACCESS_KEY_ID: 'test',
  AWS_SECRET_ACCESS_KEY: 'test',
  AWS_REGION: 'us-east-1',
  AWS_EC2_METADATA_DISABLED: 'true',
}

function png(size) {
  const head = Buffer.from('89504e470d0a1a0a0000000d49484452000000400000004008060000', 'hex')
  return Buffer.concat([head, random(size - head.length)])
}

function pdf(size) {
  const head = Buffer.from('%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog >>\nendobj\n', 'latin1')
  return Buffer.concat([head, random(size - head.length)])
}

// A single POST lands on `tmp/<id>.post` (a staging key), a multipart upload on `tmp/<id>`.
const idOf = (key) => key.split('/').at(-1).replace(/\.post$/, '')

/** A static server on 127.0.0.1 for the page: `/` (HTML) and `/direct-s3.js` (the bundle). */
async function startPageServer(script) {
  const html = `<!doctype html>
<html><head><meta charset="utf-8"><title>direct-to-S3 uploads</title></head>
<body><h1>@uppy/aws-s3 → S3</h1><input type="file" id="files" multiple><pre id="status"></pre>
<script src="/direct-s3.js"></script></body></html>`
  const server = http.createServer((req, res) => {
    const pathname = new URL(req.url, 'http://x').pathname
    if (pathname === '/') {
      res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' })
      res.end(html)
    } else if (pathname === '/favicon.ico') {
      res.writeHead(204)
      res.end()
    } else if (pathname === '/direct-s3.js') {
      res.writeHead(200, { 'Content-Type': 'text/javascript; charset=utf-8' })
      res.end(script)
    } else {
      res.writeHead(404)
      res.end()
    }
  })
  await new Promise((resolve, reject) => server.listen(0, '127.0.0.1', resolve).once('error', reject))
  return {
    origin: `http://127.0.0.1:${server.address().port}`,
    stop: () => new Promise((resolve) => server.close(resolve)),
  }
}

/** moto: a fresh bucket of this run; objects are checked with an (unsigned) HEAD. */
async function motoS3(endpoint) {
  assertLoopback(endpoint)
  const bucket = `direct-browser-${Date.now().toString(36)}-${process.pid}`
  const res = await fetchT(`${endpoint}/${bucket}`, { method: 'PUT' })
  assert.equal(res.status, 200, `creating bucket ${bucket} on moto at ${endpoint}: ${await res.text()}`)
  return {
    name: 'moto',
    endpoint,
    bucket,
    async exists(key) {
      // moto answers an unsigned HEAD of an object with 403; an unsigned listing works.
      const res = await fetchT(`${endpoint}/${bucket}?list-type=2&prefix=${encodeURIComponent(key)}`)
      const xml = await res.text()
      assert.equal(res.status, 200, xml)
      return xml.includes(`<Key>${key}</Key>`)
    },
    async stop() {},
  }
}

/** s3s-fs (SigV4 verified): objects are files under its root directory. */
async function s3sFs() {
  if (!fs.existsSync(S3S_FS_BIN)) {
    throw new Error(`${S3S_FS_BIN} is missing: cargo build -p tus-store-s3 --example s3s_fs_server`)
  }
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'direct-s3s-fs-'))
  const bucket = 'direct-browser'
  const prefix = 's3s-fs listening on'
  let proc
  try {
    proc = await startProcess('direct-s3-s3s-fs', S3S_FS_BIN, [root, bucket], [prefix])
  } catch (e) {
    fs.rmSync(root, { recursive: true, force: true })
    throw e
  }
  const endpoint = proc.urls[prefix]
  assertLoopback(endpoint)
  return {
    name: 's3s-fs',
    endpoint,
    bucket,
    async exists(key) {
      return fs.existsSync(path.join(root, bucket, key))
    },
    async stop() {
      await proc.stop()
      fs.rmSync(root, { recursive: true, force: true })
    },
  }
}

describe('direct-to-S3 uploads: @uppy/aws-s3 in Chromium, tus-server signing', { timeout: 5 * 60_000 }, () => {
  let browser
  let page
  let clamd
  let workDir
  const files = {}

  before(async () => {
    if (!process.env.TUS_TEST_MOTO_ENDPOINT) {
      throw new Error(
        'TUS_TEST_MOTO_ENDPOINT is not set: this test needs a moto S3 server (e.g. http://127.0.0.1:5056; ' +
          'scripts/test-all.sh starts one from target/moto-venv)',
      )
    }
    if (!fs.existsSync(CHROMIUM)) {
      throw new Error(`Chromium not found at ${CHROMIUM}: apt-get install chromium (or set CHROMIUM_PATH)`)
    }
    tusServerBin()
    workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'direct-s3-files-'))
    const contents = {
      'big.bin': random(23 * MiB + 777),
      'small.png': png(200 * 1024),
      'eicar.txt': eicar(),
      'fake.png': pdf(30 * 1024),
      'twelve.bin': random(12 * MiB + 5),
      'one.bin': random(1 * MiB),
    }
    for (const [name, bytes] of Object.entries(contents)) {
      const file = path.join(workDir, name)
      fs.writeFileSync(file, bytes)
      files[name] = { path: file, bytes, sha256: sha256(bytes) }
    }
    const [script, clamdStarted] = await Promise.allSettled([bundleDirectS3Page(), startClamd()])
    if (clamdStarted.status === 'fulfilled') clamd = clamdStarted.value
    if (script.status === 'rejected') throw script.reason
    if (clamdStarted.status === 'rejected') throw clamdStarted.reason
    page = await startPageServer(script.value)
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_FLAGS, timeout: 30_000 })
  })

  after(async () => {
    await browser?.close()
    await page?.stop()
    await clamd?.stop()
    if (workDir) fs.rmSync(workDir, { recursive: true, force: true })
  })

  for (const which of ['moto', 's3s-fs']) {
    describe(`on ${which}`, () => {
      /** { s3, proxy, tus (origin), tap }; `stops`: what to stop, in reverse order of starting. */
      const env = {}
      const stops = []

      before(async () => {
        env.s3 = which === 'moto' ? await motoS3(process.env.TUS_TEST_MOTO_ENDPOINT) : await s3sFs()
        stops.push(() => env.s3.stop())
        env.proxy = await startS3CorsProxy({
          target: env.s3.endpoint,
          allowOrigin: page.origin,
          throttle: { bytesPerSecond: PART_RATE, methods: ['PUT'], holdLastMs: HOLD_LAST_MS },
        })
        stops.push(() => env.proxy.stop())
        const uploadDir = fs.mkdtempSync(path.join(os.tmpdir(), 'direct-s3-unused-'))
        stops.push(() => fs.rmSync(uploadDir, { recursive: true, force: true }))
        const args = [
          '--host', '127.0.0.1',
          '--port', '0',
          '--upload-dir', uploadDir,
          '--s3-bucket', env.s3.bucket,
          '--s3-endpoint', env.proxy.url,
          '--s3-force-path-style',
          '--s3-object-prefix', 'tmp/',
          '--s3-promote-prefix', 'prod/',
          '--direct-s3',
          '--direct-s3-sweep-interval', '500ms',
          '--allowed-types', ALLOWED_TYPES,
          '--clamd-address', clamd.address,
          '--cors-allow-origin', page.origin,
        ]
        const childEnv = { ...process.env, ...S3_ENV }
        delete childEnv.AWS_SESSION_TOKEN
        delete childEnv.AWS_PROFILE
        const prefix = 'tus-server listening on'
        const server = await startProcess(`direct-s3-tus-server-${which}`, tusServerBin(), args, [prefix], { env: childEnv })
        stops.push(() => server.stop())
        env.tus = new URL(server.urls[prefix]).origin
        assertLoopback(env.tus)
        env.tap = await startTcpTap(env.tus)
        stops.push(() => env.tap.stop())
      })

      const downloads = []
      const refusals = []

      after(async () => {
        fs.mkdirSync(path.join(artifacts, 'logs'), { recursive: true })
        fs.writeFileSync(path.join(artifacts, 'logs', `direct-s3-served-${which}.json`), JSON.stringify({ downloads, refusals }, null, 1))
        if (env.proxy) {
          fs.writeFileSync(path.join(artifacts, 'logs', `direct-s3-proxy-${which}.json`), JSON.stringify(env.proxy.log, null, 1))
        }
        for (const stop of stops.reverse()) await stop()
      })

      /**
       * Opens the page (companion = the tap in front of tus-server), picks the files, uploads
       * `specs` in one batch; saves a screenshot `<shot>.png`. Resolves the page's record of each
       * file, the page's fetch calls, console messages and the bytes the browser sent tus-server.
       */
      async function uploadInPage(shot, specs) {
        const context = await browser.newContext({ viewport: { width: 1000, height: 400 } })
        const tab = await context.newPage()
        tab.setDefaultTimeout(30_000)
        const consoleMessages = []
        tab.on('console', (msg) => consoleMessages.push(msg.text()))
        tab.on('pageerror', (err) => consoleMessages.push(`pageerror: ${err.message}`))
        try {
          env.tap.reset()
          const res = await tab.goto(`${page.origin}/#companion=${encodeURIComponent(env.tap.url)}&multipartAbove=${MULTIPART_ABOVE}&chunkSize=${PART}`)
          assert.equal(res.status(), 200)
          await tab.locator('#files').setInputFiles(specs.map((s) => files[s.name].path))
          const result = await tab.evaluate(([s, t]) => window.direct.upload(s, t), [specs, 45_000])
          const calls = await tab.evaluate(() => window.direct.calls)
          fs.mkdirSync(artifacts, { recursive: true })
          await tab.screenshot({ path: path.join(artifacts, `${shot}.png`), fullPage: true })
          const sentToTus = env.tap.counts.up
          fs.mkdirSync(path.join(artifacts, 'logs'), { recursive: true })
          fs.writeFileSync(path.join(artifacts, 'logs', `${shot}.json`), JSON.stringify({ files: result, calls, consoleMessages, sentToTus }, null, 1))
          const detail = `errors ${JSON.stringify(Object.fromEntries(Object.entries(result).map(([n, f]) => [n, f.error])))}; calls ${JSON.stringify(calls.map((c) => [c.method, c.url, c.status, c.statusText, c.body?.slice(0, 300)]))}; console ${consoleMessages.join(' | ')}`
          return { files: result, calls, consoleMessages, sentToTus, detail }
        } finally {
          await context.close()
        }
      }

      /** Polls `GET /s3/uploads/<id>` until it is no longer `uploading`/`processing`. */
      async function settled(id, timeoutMs = 30_000) {
        const url = `${env.tus}/s3/uploads/${encodeURIComponent(id)}`
        const deadline = Date.now() + timeoutMs
        const seen = []
        for (;;) {
          const res = await fetchT(url)
          const body = await res.json().catch(() => null)
          if (res.status !== 200) throw new Error(`GET ${url} answered ${res.status}: ${JSON.stringify(body)}`)
          if (seen.at(-1) !== body.state) seen.push(body.state)
          if (!['uploading', 'processing'].includes(body.state)) return { ...body, seen }
          if (Date.now() > deadline) throw new Error(`${id} is still ${body.state} after ${timeoutMs} ms`)
          await sleep(100)
        }
      }

      /** The page's browser-sent requests that reached the proxy for `key` (parts, or the form). */
      function s3Requests(key) {
        const objectPath = `/${env.s3.bucket}/${key}`
        return env.proxy.log.filter(
          (e) =>
            e.origin === page.origin &&
            !e.preflight &&
            ((e.method === 'PUT' && e.path.split('?')[0] === objectPath) ||
              (e.method === 'POST' && e.bodyHead.includes(`\r\n\r\n${key}\r\n`))),
        )
      }

      const partNumber = (entry) => Number(new URL(entry.path, 'http://x').searchParams.get('partNumber'))

      /** Asserts `state` is clean, the download (of `location`) is `name`'s bytes, and it was promoted. */
      async function assertCleanAndServed(report, name, key) {
        assert.equal(report.state, 'clean', `${which} ${name}: ${JSON.stringify(report)}`)
        assert.equal(report.key, key.replace(/\.post$/, ''))
        const id = idOf(key)
        assert.equal(new URL(report.location).pathname, `/files/${id}`, `the download URL: ${report.location}`)
        const res = await fetchT(report.location, {}, 60_000)
        const body = Buffer.from(await res.arrayBuffer())
        assert.equal(res.status, 200, `GET ${report.location}: ${body.toString().slice(0, 300)}`)
        // Served by tus-server, or redirected to a presigned GET of "S3" (the proxy).
        if (res.redirected) assert.ok(res.url.startsWith(`${env.proxy.url}/`), `redirected to ${res.url}`)
        downloads.push({ name, location: report.location, servedFrom: res.url })
        assert.equal(body.length, files[name].bytes.length, `${name}: downloaded size`)
        assert.equal(sha256(body), files[name].sha256, `${name}: the download is the bytes the browser uploaded`)
        assert.ok(await env.s3.exists(`prod/${id}`), `${which}: ${name} was promoted to prod/${id}`)
        assert.ok(!(await env.s3.exists(key)), `${which}: ${name} is gone from ${key}`)
        assert.ok(!(await env.s3.exists(`tmp/${id}`)), `${which}: ${name} is gone from the temporary area`)
      }

      /**
       * Asserts the settled `report` of `id` is `state`, offers no download (its location is the
       * poll URL), that tus-server refuses to serve it, and that nothing of it reached prod/.
       */
      async function assertNeverServed(report, id, name, state) {
        assert.equal(report.state, state, JSON.stringify(report))
        assert.equal(new URL(report.location).pathname, `/s3/uploads/${id}`, `no download URL: ${report.location}`)
        const res = await fetchT(`${env.tus}/files/${id}`, { redirect: 'manual' })
        const body = Buffer.from(await res.arrayBuffer())
        assert.ok([403, 409].includes(res.status), `GET /files/${id} of ${name} answered ${res.status}`)
        refusals.push({ name, state, status: res.status, statusText: res.statusText })
        assert.ok(!body.includes(files[name].bytes.subarray(0, 16)), `${name}: no byte of it is served`)
        assert.ok(!(await env.s3.exists(`prod/${id}`)), `${which}: ${name} was not promoted`)
      }

      async function assertNoTusBytes(run) {
        assert.ok(
          run.sentToTus > 0 && run.sentToTus < SIGNING_BYTES_MAX,
          `the browser sent tus-server ${run.sentToTus} bytes (only the signing calls)`,
        )
        const metrics = await (await fetchT(`${env.tus}/metrics`)).text()
        assert.match(metrics, /^tus_bytes_received_total 0$/m, 'no upload bytes were received by tus-server itself')
      }

      test('a 23 MiB multipart upload, paused mid-part and resumed: checked, promoted, served identical', { timeout: TEST_TIMEOUT }, async () => {
        const name = 'big.bin'
        const size = files[name].bytes.length
        const run = await uploadInPage(`direct-s3-${which}-multipart-pause`, [
          { name, type: 'application/octet-stream', pauseAtBytes: PART + 1, pauseForMs: 1_000 },
        ])
        const f = run.files[name]
        assert.equal(f.error, null, run.detail)
        assert.ok(f.success, run.detail)
        const { key } = f.success.body
        assert.match(key, /^tmp\/[^/]+$/, `the server chose the key: ${key}`)
        const id = idOf(key)

        // Paused mid-way (in part 2), nothing moved while paused, the server saw it unfinished.
        assert.equal(f.pauses.length, 1, JSON.stringify(f.pauses))
        const [pause] = f.pauses
        assert.equal(pause.paused, true, 'pauseResume paused it')
        assert.ok(pause.bytesAtPause > PART && pause.bytesAtPause < size, `paused at ${pause.bytesAtPause} of ${size}`)
        assert.equal(pause.key, key)
        assert.equal(pause.progressWhilePaused, 0, 'no progress while paused')
        assert.equal(pause.serverSaid?.status, 200, JSON.stringify(pause.serverSaid))
        assert.equal(pause.serverSaid.body.state, 'uploading', JSON.stringify(pause.serverSaid))
        assert.equal(pause.resumed, true, 'pauseResume resumed it')
        assert.ok(f.success.at > pause.resumedAt, 'it finished after the resume')

        // The plugin resumed from the server's list of parts: part 1 was there, part 2 (cut) not.
        const signPart = (n) => run.calls.filter((c) => c.method === 'GET' && new URL(c.url).pathname.endsWith(`/${n}`) && c.url.includes('/s3/multipart/'))
        const uploadId = decodeURIComponent(new URL(signPart(1)[0].url).pathname.split('/')[3])
        const uploadPath = `/s3/multipart/${encodeURIComponent(uploadId)}`
        const lists = run.calls.filter((c) => c.method === 'GET' && new URL(c.url).pathname === uploadPath)
        assert.equal(lists.length, 1, `one list-parts call: ${run.detail}`)
        assert.ok(lists[0].start >= pause.resumedAt, 'on resume')
        assert.equal(lists[0].status, 200, run.detail)
        const listed = JSON.parse(lists[0].body)
        assert.ok(Array.isArray(listed), lists[0].body)
        assert.deepEqual(listed.map((p) => Number(p.PartNumber)), [1], `only part 1 was stored at the pause: ${lists[0].body}`)
        // A part listed with its ETag is not sent again. s3s-fs's ListParts has no ETags (the
        // server lists `"ETag": ""`), and the plugin sends a part listed without one again.
        const hasEtag = (p) => typeof p.ETag === 'string' && p.ETag.replace(/"/g, '') !== ''
        if (which === 'moto') assert.ok(listed.every(hasEtag), `moto lists the ETags: ${lists[0].body}`)
        const resent = listed.filter((p) => !hasEtag(p)).map((p) => Number(p.PartNumber))

        // Every part went browser → proxy → S3; the one in flight at the pause was cut.
        const puts = s3Requests(key)
        const stored = puts.filter((e) => e.status === 200 && e.complete && !e.clientAborted)
        const parts = Math.ceil(size / PART)
        const partSize = (n) => Math.min(PART, size - (n - 1) * PART)
        assert.deepEqual(
          stored.map(partNumber).sort((a, b) => a - b),
          [...Array.from({ length: parts }, (_, i) => i + 1), ...resent].sort((a, b) => a - b),
          `each of the ${parts} parts stored once (and again: ${resent}): ${JSON.stringify(puts.map((e) => [partNumber(e), e.status, e.reqBytes, e.clientAborted]))}`,
        )
        assert.equal(
          stored.reduce((n, e) => n + e.reqBytes, 0),
          size + resent.reduce((n, p) => n + partSize(p), 0),
          'the stored parts add up to the file, through the proxy',
        )
        const cut = puts.filter((e) => e.clientAborted)
        assert.deepEqual(cut.map(partNumber), [2], 'the part in flight at the pause was cut')
        assert.equal(signPart(2).length, 2, 'part 2 was signed again after the resume')

        // The completion named every part with the ETag S3 gave it.
        const completes = run.calls.filter((c) => c.method === 'POST' && new URL(c.url).pathname === `${uploadPath}/complete`)
        assert.equal(completes.length, 1, run.detail)
        assert.equal(completes[0].status, 200, run.detail)
        const sent = JSON.parse(completes[0].requestBody).parts
        assert.deepEqual(sent.map((p) => p.PartNumber), Array.from({ length: parts }, (_, i) => i + 1))
        assert.ok(sent.every((p) => /^"?[0-9a-f]{32}"?$/.test(p.ETag)), `ETags: ${completes[0].requestBody}`)
        await assertNoTusBytes(run)

        // Completion answered a URL on tus-server; the checks run, then it is clean and served.
        assert.equal(new URL(f.success.uploadURL).origin, env.tap.url, `uploadURL ${f.success.uploadURL}`)
        const report = await settled(id)
        await assertCleanAndServed(report, name, key)
      })

      test('a 200 KiB PNG in one POST (policy form): clean, promoted, served identical', { timeout: TEST_TIMEOUT }, async () => {
        const name = 'small.png'
        const size = files[name].bytes.length
        const run = await uploadInPage(`direct-s3-${which}-single`, [{ name, type: 'image/png' }])
        const f = run.files[name]
        assert.equal(f.error, null, run.detail)
        const { key } = f.success.body
        assert.match(key, /^tmp\/[^/]+$/)
        const params = run.calls.filter((c) => new URL(c.url).pathname === '/s3/params')
        assert.equal(params.length, 1, run.detail)
        assert.equal(params[0].status, 200)
        assert.ok(!run.calls.some((c) => c.url.includes('/s3/multipart')), 'no multipart for a small file')
        // The plugin derives a POST upload's location itself: the object URL on "S3".
        assert.equal(f.success.uploadURL, `${env.proxy.url}/${env.s3.bucket}/${key}`)

        const posts = s3Requests(key)
        assert.equal(posts.length, 1, JSON.stringify(posts))
        assert.equal(posts[0].method, 'POST')
        assert.ok([200, 201, 204].includes(posts[0].status), `S3 answered the form ${posts[0].status}`)
        assert.ok(
          posts[0].reqBytes > size && posts[0].reqBytes < size + 8 * 1024,
          `the form (${posts[0].reqBytes} bytes) carried the ${size}-byte file through the proxy`,
        )
        await assertNoTusBytes(run)
        await assertCleanAndServed(await settled(idOf(key)), name, key)
      })

      test('the EICAR test file: quarantined, never served', { timeout: TEST_TIMEOUT }, async () => {
        const name = 'eicar.txt'
        const run = await uploadInPage(`direct-s3-${which}-eicar`, [{ name, type: 'text/plain' }])
        const f = run.files[name]
        assert.equal(f.error, null, `the upload itself succeeds; the scan comes after: ${run.detail}`)
        const { key } = f.success.body
        assert.equal(s3Requests(key).length, 1, 'the form went to S3 through the proxy')
        await assertNoTusBytes(run)
        await assertNeverServed(await settled(idOf(key)), idOf(key), name, 'quarantined')
      })

      test('a PDF declared image/png: rejected, never served', { timeout: TEST_TIMEOUT }, async () => {
        const name = 'fake.png'
        const run = await uploadInPage(`direct-s3-${which}-pdf-as-png`, [{ name, type: 'image/png' }])
        const f = run.files[name]
        assert.equal(f.type, 'image/png')
        assert.equal(f.error, null, run.detail)
        const { key } = f.success.body
        assert.equal(s3Requests(key).length, 1)
        await assertNoTusBytes(run)
        await assertNeverServed(await settled(idOf(key)), idOf(key), name, 'rejected')
      })

      test('a type outside --allowed-types is refused at signing: the plugin reports the server\'s message', { timeout: TEST_TIMEOUT }, async () => {
        const name = 'small.png'
        const before = env.proxy.log.length
        const run = await uploadInPage(`direct-s3-${which}-refused-type`, [{ name, type: 'video/mp4' }])
        const f = run.files[name]
        assert.equal(f.success, null, run.detail)
        assert.ok(f.error, run.detail)
        const [params] = run.calls
        assert.equal(run.calls.length, 1, run.detail)
        assert.equal(new URL(params.url).pathname, '/s3/params')
        assert.equal(params.status, 415, run.detail)
        const refusal = JSON.parse(params.body)
        assert.equal(refusal.code, 'ERR_TYPE_NOT_ALLOWED', params.body)
        assert.ok(refusal.message, params.body)
        // @uppy/aws-s3 shows the reason phrase, which carries the server's message.
        assert.equal(params.statusText, refusal.message, 'the reason phrase is the message')
        assert.equal(f.error.message, `Companion request failed: ${refusal.message}`)
        assert.deepEqual(
          env.proxy.log.slice(before).filter((e) => e.origin === page.origin),
          [],
          'nothing was sent to S3',
        )
      })

      test('a 12 MiB multipart and a 1 MiB single upload in parallel: both clean and identical', { timeout: TEST_TIMEOUT }, async () => {
        const run = await uploadInPage(`direct-s3-${which}-parallel`, [
          { name: 'twelve.bin', type: 'application/octet-stream' },
          { name: 'one.bin', type: 'application/octet-stream' },
        ])
        const big = run.files['twelve.bin']
        const small = run.files['one.bin']
        assert.equal(big.error, null, run.detail)
        assert.equal(small.error, null, run.detail)
        // Added second, finished first: the two ran side by side.
        assert.ok(small.success.at < big.success.at, `one.bin done at ${small.success.at} ms, twelve.bin at ${big.success.at} ms`)
        const puts = s3Requests(big.success.body.key)
        const [post] = s3Requests(small.success.body.key)
        assert.equal(post?.method, 'POST')
        assert.ok(post.start < Math.max(...puts.map((e) => e.end)), 'the form was posted while parts were uploading')
        assert.equal(
          puts.filter((e) => e.status === 200).reduce((n, e) => n + e.reqBytes, 0),
          files['twelve.bin'].bytes.length,
          'the parts add up to the file, through the proxy',
        )
        await assertNoTusBytes(run)
        const [bigReport, smallReport] = await Promise.all([settled(idOf(big.success.body.key)), settled(idOf(small.success.body.key))])
        await assertCleanAndServed(bigReport, 'twelve.bin', big.success.body.key)
        await assertCleanAndServed(smallReport, 'one.bin', small.success.body.key)
      })
    })
  }
})
