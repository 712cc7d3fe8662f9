// Uppy (Dashboard + Tus plugin) in headless Debian Chromium, driven by playwright-core, against
// examples/uppy (same origin, cross-origin, CORS allow-list without the page's origin) and
// against tus-server (cross-origin; `TUS_SERVER_ARGS` selects its store), also with JWT
// authentication (the token as `Authorization: Bearer`, or as a cookie with CORS credentials).
// Screenshots go to conformance-tests/artifacts/.
import assert from 'node:assert/strict'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { after, before, describe, test } from 'node:test'

import { chromium } from 'playwright-core'

import { buildUppy } from '../scripts/build-uppy.mjs'
import {
  CHROMIUM,
  CHROMIUM_FLAGS,
  MiB,
  artifacts,
  assertLoopback,
  bearer,
  download,
  exampleUppyBin,
  freePort,
  head,
  keyDir,
  mintToken,
  newSecret,
  random,
  sha256,
  startProcess,
  startTusServer,
} from '../lib/helpers.mjs'

const TEST_TIMEOUT = 120_000

/** Starts examples/uppy on 127.0.0.1 with a fresh upload dir; resolves its URLs and `stop()`. */
async function startExampleUppy(name, extraArgs = []) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'uppy-example-'))
  const args = ['--host', '127.0.0.1', '--port', '0', '--upload-dir', dir, ...extraArgs]
  const prefixes = ['tus endpoint:', 'page:']
  if (extraArgs.includes('--page-port')) prefixes.push('cross-origin page:')
  let proc
  try {
    proc = await startProcess(name, exampleUppyBin(), args, prefixes)
  } catch (e) {
    fs.rmSync(dir, { recursive: true, force: true })
    throw e
  }
  for (const url of Object.values(proc.urls)) assertLoopback(url)
  return {
    endpoint: proc.urls['tus endpoint:'],
    page: proc.urls['page:'],
    crossOriginPage: proc.urls['cross-origin page:'],
    async stop() {
      await proc.stop()
      fs.rmSync(dir, { recursive: true, force: true })
    },
  }
}

describe('Uppy in Chromium', { timeout: 10 * 60_000 }, () => {
  let browser
  let workDir
  let file
  let bytes

  before(async () => {
    if (!fs.existsSync(CHROMIUM)) {
      throw new Error(`Chromium not found at ${CHROMIUM}: apt-get install chromium (or set CHROMIUM_PATH)`)
    }
    await buildUppy()
    workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'uppy-files-'))
    bytes = random(5 * MiB + 321)
    file = path.join(workDir, 'słońce.bin')
    fs.writeFileSync(file, bytes)
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: CHROMIUM_FLAGS,
      timeout: 30_000,
    })
  })

  after(async () => {
    await browser?.close()
    if (workDir) fs.rmSync(workDir, { recursive: true, force: true })
  })

  /**
   * Opens `pageUrl`, picks the file through the Dashboard's file input, presses Upload and waits
   * (bounded) until the status bar says complete or error. Returns what the page logged, the
   * console messages, and the final status bar state; saves a screenshot as `<shot>.png`.
   * `cookies` are added to the browser context first (playwright `addCookies`).
   */
  async function uploadThroughPage(pageUrl, shot, { cookies = [] } = {}) {
    const context = await browser.newContext({ viewport: { width: 1000, height: 700 } })
    if (cookies.length) await context.addCookies(cookies)
    const page = await context.newPage()
    page.setDefaultTimeout(30_000)
    const consoleMessages = []
    page.on('console', (msg) => consoleMessages.push(msg.text()))
    page.on('pageerror', (err) => consoleMessages.push(`pageerror: ${err.message}`))
    try {
      const res = await page.goto(pageUrl)
      assert.equal(res.status(), 200, `GET ${pageUrl}`)
      await page.locator('.uppy-Dashboard').waitFor()
      await page.locator('input.uppy-Dashboard-input[name="files[]"]:not([webkitdirectory])').setInputFiles(file)
      await page.locator('.uppy-Dashboard-Item').waitFor()
      await page.locator('.uppy-StatusBar-actionBtn--upload').click()
      const statusBar = page.locator('.uppy-StatusBar.is-complete, .uppy-StatusBar.is-error')
      await statusBar.waitFor({ timeout: 60_000 })
      const state = (await statusBar.getAttribute('class')).includes('is-complete') ? 'complete' : 'error'
      const progressNow = await page.locator('.uppy-StatusBar-progress').getAttribute('aria-valuenow')
      const log = await page.evaluate(() => window.uploadLog)
      fs.mkdirSync(artifacts, { recursive: true })
      await page.screenshot({ path: path.join(artifacts, `${shot}.png`), fullPage: true })
      return { state, progressNow, log, consoleMessages }
    } finally {
      await context.close()
    }
  }

  /**
   * Asserts the page uploaded the file completely and the server holds identical bytes (asked
   * with `headers`, e.g. a token).
   */
  async function assertUploaded(result, endpoint, headers = {}) {
    const { state, progressNow, log, consoleMessages } = result
    assert.equal(state, 'complete', `status bar: ${state}; errors ${JSON.stringify(log.errors)}; console ${consoleMessages.join(' | ')}`)
    assert.equal(progressNow, '100', 'the status bar shows 100 %')
    assert.equal(log.maxProgress, 100, 'Uppy reported 100 % progress')
    assert.deepEqual(log.errors, [])
    assert.equal(log.successes.length, 1)
    const { uploadURL, size } = log.successes[0]
    assert.equal(size, bytes.length)
    assert.ok(uploadURL.startsWith(endpoint), `upload URL ${uploadURL} is under ${endpoint}`)
    const stored = await download(uploadURL, headers)
    assert.equal(stored.length, bytes.length)
    assert.equal(sha256(stored), sha256(bytes), 'the server holds the bytes the browser sent')
  }

  test('same origin (examples/uppy)', { timeout: TEST_TIMEOUT }, async () => {
    const app = await startExampleUppy('uppy-same-origin')
    try {
      await assertUploaded(await uploadThroughPage(app.page, 'uppy-same-origin'), app.endpoint)
    } finally {
      await app.stop()
    }
  })

  test('cross-origin page (examples/uppy --page-port)', { timeout: TEST_TIMEOUT }, async () => {
    const app = await startExampleUppy('uppy-cross-origin', ['--page-port', '0'])
    try {
      assert.notEqual(new URL(app.crossOriginPage).origin, new URL(app.endpoint).origin)
      await assertUploaded(await uploadThroughPage(app.crossOriginPage, 'uppy-cross-origin'), app.endpoint)
    } finally {
      await app.stop()
    }
  })

  test('cross-origin upload fails when the page origin is not allowed', { timeout: TEST_TIMEOUT }, async () => {
    const app = await startExampleUppy('uppy-cors-denied', [
      '--page-port',
      '0',
      '--cors-allow-origin',
      'http://127.0.0.1:9',
    ])
    try {
      const denied = await uploadThroughPage(app.crossOriginPage, 'uppy-cors-denied')
      assert.equal(denied.state, 'error', 'the upload must fail without a CORS grant')
      assert.deepEqual(denied.log.successes, [])
      assert.ok(denied.log.errors.length > 0, 'Uppy reported the failure')
      assert.ok(
        denied.consoleMessages.some((m) => m.includes('CORS policy')),
        `Chromium blocked it for CORS: ${denied.consoleMessages.join(' | ')}`,
      )
      // The same server still takes the same file from its own origin.
      await assertUploaded(await uploadThroughPage(app.page, 'uppy-cors-denied-same-origin'), app.endpoint)
    } finally {
      await app.stop()
    }
  })

  test('cross-origin upload works when the page origin is on the allow-list', { timeout: TEST_TIMEOUT }, async () => {
    const port = await freePort()
    const app = await startExampleUppy('uppy-cors-allowed', [
      '--page-port',
      String(port),
      '--cors-allow-origin',
      'http://127.0.0.1:9',
      '--cors-allow-origin',
      `http://127.0.0.1:${port}`,
    ])
    try {
      assert.equal(new URL(app.crossOriginPage).port, String(port))
      await assertUploaded(await uploadThroughPage(app.crossOriginPage, 'uppy-cors-allowed'), app.endpoint)
    } finally {
      await app.stop()
    }
  })

  test('cross-origin page against tus-server', { timeout: TEST_TIMEOUT }, async () => {
    const server = await startTusServer('uppy-tus-server')
    let app
    try {
      app = await startExampleUppy('uppy-page-for-tus-server', ['--endpoint', server.endpoint])
      await assertUploaded(await uploadThroughPage(app.page, 'uppy-tus-server'), server.endpoint)
    } finally {
      await app?.stop()
      await server.stop()
    }
  })

  // JWT authentication: an HS256 secret in a temp key file, tokens minted here. The file is the
  // suite's `.bin`, which Chromium (and so Uppy's `filetype`) declares application/octet-stream:
  // with authentication on, every finished upload goes through the server's content check.
  describe('tus-server with JWT authentication', () => {
    let keys
    let secret
    let keyFile
    before(() => {
      keys = keyDir()
      secret = newSecret()
      keyFile = keys.write('hs256.key', `${secret}\n`)
    })
    after(() => keys?.remove())

    test('the token as Authorization: Bearer (@uppy/tus headers)', { timeout: TEST_TIMEOUT }, async () => {
      const server = await startTusServer('uppy-auth-header', ['--auth-jwt-key-file', keyFile])
      let app
      try {
        app = await startExampleUppy('uppy-page-for-auth-header', ['--endpoint', server.endpoint])
        // Without a token: the creation is refused and Uppy reports the 401.
        const denied = await uploadThroughPage(app.page, 'uppy-auth-header-missing')
        assert.equal(denied.state, 'error', 'no token: the upload fails')
        assert.deepEqual(denied.log.successes, [])
        assert.ok(
          denied.log.errors.some((e) => e.message.includes('response code: 401')),
          `Uppy reported the 401: ${JSON.stringify(denied.log.errors)}`,
        )

        // With the token (the page's #token= setting: @uppy/tus `headers: { Authorization }`).
        const token = mintToken(secret, { sub: 'dana' })
        const result = await uploadThroughPage(`${app.page}#token=${token}`, 'uppy-auth-header')
        assert.equal(result.state, 'complete', `status bar: ${result.state}; errors ${JSON.stringify(result.log.errors)}`)
        const { uploadURL } = result.log.successes[0]
        assert.equal((await head(uploadURL, bearer(token))).status, 200, 'HEAD with the token')
        assert.equal((await head(uploadURL)).status, 401, 'HEAD without the token')
        assert.equal((await head(uploadURL, bearer(mintToken(secret, { sub: 'eve' })))).status, 404, "another sub's token")
        await assertUploaded(result, server.endpoint, bearer(token))
      } finally {
        await app?.stop()
        await server.stop()
      }
    })

    test('the token as a cookie (--auth-jwt-cookie, withCredentials, CORS credentials)', { timeout: TEST_TIMEOUT }, async () => {
      // The page is served from its own port (another origin, same site: cookies ignore ports).
      const pagePort = await freePort()
      const pageOrigin = `http://127.0.0.1:${pagePort}`
      const server = await startTusServer('uppy-auth-cookie', [
        '--auth-jwt-key-file',
        keyFile,
        '--auth-jwt-cookie',
        'tus_token',
        '--cors-allow-origin',
        pageOrigin,
        '--cors-allow-credentials',
      ])
      let app
      try {
        app = await startExampleUppy('uppy-page-for-auth-cookie', ['--page-port', String(pagePort), '--endpoint', server.endpoint])
        assert.equal(new URL(app.crossOriginPage).origin, pageOrigin)
        assert.notEqual(new URL(server.endpoint).origin, pageOrigin)
        const token = mintToken(secret, { sub: 'frank' })
        // A cookie for the server's origin (as its login page would have set it), not readable
        // by the page's script.
        const cookies = [
          { name: 'tus_token', value: token, url: new URL(server.endpoint).origin, httpOnly: true, sameSite: 'Lax' },
        ]
        // Without withCredentials the browser leaves the cookie out of the cross-origin requests.
        const denied = await uploadThroughPage(app.crossOriginPage, 'uppy-auth-cookie-no-credentials', { cookies })
        assert.equal(denied.state, 'error', 'no credentials mode: the upload fails')
        assert.ok(
          denied.log.errors.some((e) => e.message.includes('response code: 401')),
          `Uppy reported the 401: ${JSON.stringify(denied.log.errors)}`,
        )

        // With it (the page's #withCredentials setting: @uppy/tus `withCredentials: true`).
        const result = await uploadThroughPage(`${app.crossOriginPage}#withCredentials`, 'uppy-auth-cookie', { cookies })
        assert.equal(result.state, 'complete', `status bar: ${result.state}; errors ${JSON.stringify(result.log.errors)}`)
        const { uploadURL } = result.log.successes[0]
        assert.equal((await head(uploadURL, bearer(token))).status, 200, 'the cookie and the header name the same owner')
        assert.equal((await head(uploadURL)).status, 401, 'HEAD without the token')
        await assertUploaded(result, server.endpoint, { Cookie: `tus_token=${token}` })
      } finally {
        await app?.stop()
        await server.stop()
      }
    })
  })
})
