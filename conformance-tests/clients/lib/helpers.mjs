// Shared helpers of the real-client tests: spawning tus-server / example-uppy on 127.0.0.1,
// HTTP checks (HEAD, GET) and small utilities. Everything has a bounded timeout.
import { spawn } from 'node:child_process'
import { createHash, createHmac, randomBytes } from 'node:crypto'
import fs from 'node:fs'
import os from 'node:os'
import net from 'node:net'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const here = path.dirname(fileURLToPath(import.meta.url))
/** The repository root. */
export const repo = path.resolve(here, '../../..')
/** Screenshots and process logs (gitignored). */
export const artifacts = path.join(repo, 'conformance-tests/artifacts')

export const MiB = 1024 * 1024

/** Where the tus-server binary is: `TUS_SERVER_BIN` or `<repo>/target/debug/tus-server`. */
export function tusServerBin() {
  return requireFile(
    process.env.TUS_SERVER_BIN || path.join(repo, 'target/debug/tus-server'),
    'tus-server binary (set TUS_SERVER_BIN or run `cargo build -p tus-server`)',
  )
}

/** Where the example-uppy binary is: `EXAMPLE_UPPY_BIN` or `<repo>/target/debug/example-uppy`. */
export function exampleUppyBin() {
  return requireFile(
    process.env.EXAMPLE_UPPY_BIN || path.join(repo, 'target/debug/example-uppy'),
    'example-uppy binary (set EXAMPLE_UPPY_BIN or run `cargo build -p example-uppy`)',
  )
}

/** Extra tus-server flags from `TUS_SERVER_ARGS` (whitespace-separated), e.g. to select the S3 store. */
export function tusServerExtraArgs() {
  return (process.env.TUS_SERVER_ARGS || '').split(/\s+/).filter(Boolean)
}

function requireFile(file, what) {
  if (!fs.existsSync(file)) throw new Error(`missing ${what}: ${file} does not exist`)
  return file
}

const running = new Set()
process.on('exit', () => {
  for (const child of running) child.kill('SIGKILL')
})

/**
 * Spawns `bin args`, waits (at most `timeoutMs`) until its stdout printed a line starting with
 * each of `prefixes`, and returns `{ urls: {prefix: rest-of-line}, stop(), logFile, dir }`.
 * stderr goes to `<artifacts>/logs/<name>.log`. `env`: the child's environment (default: ours).
 */
export async function startProcess(name, bin, args, prefixes, { timeoutMs = 20_000, env = process.env } = {}) {
  fs.mkdirSync(path.join(artifacts, 'logs'), { recursive: true })
  const logFile = path.join(artifacts, 'logs', `${name}.log`)
  const logFd = fs.openSync(logFile, 'w')
  const child = spawn(bin, args, { stdio: ['ignore', 'pipe', logFd], env })
  fs.closeSync(logFd)
  running.add(child)
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })))
  exited.then(() => running.delete(child))

  const urls = {}
  let buffered = ''
  const ready = new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`${name} did not print ${prefixes.join(', ')} within ${timeoutMs} ms (log: ${logFile})`)),
      timeoutMs,
    )
    child.once('error', (e) => {
      clearTimeout(timer)
      reject(new Error(`${name}: cannot start ${bin}: ${e.message}`))
    })
    exited.then(({ code, signal }) => {
      clearTimeout(timer)
      const tail = fs.readFileSync(logFile, 'utf8').slice(-2000)
      reject(new Error(`${name} exited early (code ${code}, signal ${signal}): ${tail}`))
    })
    child.stdout.setEncoding('utf8')
    child.stdout.on('data', (data) => {
      buffered += data
      let nl
      while ((nl = buffered.indexOf('\n')) >= 0) {
        const line = buffered.slice(0, nl).trim()
        buffered = buffered.slice(nl + 1)
        for (const prefix of prefixes) {
          if (line.startsWith(prefix)) urls[prefix] = line.slice(prefix.length).trim()
        }
        if (prefixes.every((p) => p in urls)) {
          clearTimeout(timer)
          resolve()
        }
      }
    })
  })
  try {
    await ready
  } catch (e) {
    child.kill('SIGKILL')
    throw e
  }

  async function stop() {
    if (child.exitCode !== null || child.signalCode !== null) return
    child.kill('SIGTERM')
    const killer = setTimeout(() => child.kill('SIGKILL'), 10_000)
    await exited
    clearTimeout(killer)
  }
  return { urls, stop, logFile, child }
}

/**
 * Starts tus-server on 127.0.0.1 with a fresh upload dir, plus `TUS_SERVER_ARGS` and `extraArgs`.
 * Returns `{ endpoint, port, uploadDir, stop() }`; `stop` also removes the upload dir unless the
 * caller gave its own `uploadDir` (to restart a server on the same uploads, with the same `port`).
 */
export async function startTusServer(name, extraArgs = [], { uploadDir, port = 0 } = {}) {
  const ownDir = !uploadDir
  const dir = uploadDir || fs.mkdtempSync(path.join(os.tmpdir(), 'tus-clients-'))
  const args = ['--host', '127.0.0.1', '--port', String(port), '--upload-dir', dir, ...tusServerExtraArgs(), ...extraArgs]
  const prefix = 'tus-server listening on'
  let proc
  try {
    proc = await startProcess(name, tusServerBin(), args, [prefix])
  } catch (e) {
    if (ownDir) fs.rmSync(dir, { recursive: true, force: true })
    throw e
  }
  const endpoint = proc.urls[prefix]
  assertLoopback(endpoint)
  return {
    endpoint,
    port: Number(new URL(endpoint).port),
    uploadDir: dir,
    logFile: proc.logFile,
    async stop() {
      await proc.stop()
      if (ownDir) fs.rmSync(dir, { recursive: true, force: true })
    },
  }
}

/** Throws unless `url` is on 127.0.0.1. */
export function assertLoopback(url) {
  const host = new URL(url).hostname
  if (host !== '127.0.0.1') throw new Error(`server is not on 127.0.0.1: ${url}`)
}

/** fetch with a timeout (default 30 s). */
export async function fetchT(url, init = {}, timeoutMs = 30_000) {
  return fetch(url, { ...init, signal: AbortSignal.timeout(timeoutMs) })
}

/** HEAD with `Tus-Resumable: 1.0.0` (and `headers`); returns the response. */
export async function head(url, headers = {}) {
  return fetchT(url, { method: 'HEAD', headers: { 'Tus-Resumable': '1.0.0', ...headers } })
}

/**
 * GETs the upload's bytes (with `headers`, e.g. a token); throws unless 200. A `409` (the upload
 * is still `processing`: with authentication on, every finished upload goes through the content
 * check first) is retried for up to 15 s.
 */
export async function download(url, headers = {}) {
  const deadline = Date.now() + 15_000
  for (;;) {
    const res = await fetchT(url, { headers }, 60_000)
    if (res.status === 409 && Date.now() < deadline) {
      await res.arrayBuffer()
      await sleep(100)
      continue
    }
    if (res.status !== 200) throw new Error(`GET ${url} answered ${res.status}: ${await res.text()}`)
    return Buffer.from(await res.arrayBuffer())
  }
}

/** Hex sha256. */
export function sha256(buf) {
  return createHash('sha256').update(buf).digest('hex')
}

/** `n` random bytes. */
export function random(n) {
  return randomBytes(n)
}

/**
 * Decodes an `Upload-Metadata` header into `{ key: value }` (a key without a value, or with an
 * empty one, maps to '').
 */
export function parseMetadata(header) {
  const out = {}
  if (!header) return out
  for (const pair of header.split(',')) {
    const [key, value = ''] = pair.trim().split(' ')
    if (key) out[key] = Buffer.from(value, 'base64').toString('utf8')
  }
  return out
}

/** Resolves after `ms`. */
export function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms))
}

// ---- JWTs for the authentication tests (`tus-server --auth-jwt-key-file`) ----------------------

/**
 * An HS256 JWT: base64url(header).base64url(claims), signed with HMAC-SHA256 over `secret` (the
 * key's bytes). `exp` defaults to an hour from now; `kid` goes into the header when given.
 */
export function mintToken(secret, claims, { kid } = {}) {
  const header = { alg: 'HS256', typ: 'JWT', ...(kid ? { kid } : {}) }
  const body = { exp: Math.floor(Date.now() / 1000) + 3600, ...claims }
  const b64 = (value) => Buffer.from(JSON.stringify(value)).toString('base64url')
  const signingInput = `${b64(header)}.${b64(body)}`
  return `${signingInput}.${createHmac('sha256', secret).update(signingInput).digest('base64url')}`
}

/** `{ Authorization: 'Bearer <token>' }`. */
export function bearer(token) {
  return { Authorization: `Bearer ${token}` }
}

/** A fresh HMAC secret: 64 hex characters (the bytes of the text are the key). */
export function newSecret() {
  return randomBytes(32).toString('hex')
}

/** A JWKS of HMAC (`oct`) keys: `{ kid: secret }` → its JSON text. */
export function octJwks(keys) {
  return JSON.stringify({
    keys: Object.entries(keys).map(([kid, secret]) => ({
      kty: 'oct',
      kid,
      alg: 'HS256',
      use: 'sig',
      k: Buffer.from(secret).toString('base64url'),
    })),
  })
}

/**
 * A temp directory for key files (never in the repository): `{ dir, write(name, text) → path,
 * remove() }`.
 */
export function keyDir() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tus-keys-'))
  return {
    dir,
    write(name, text) {
      const file = path.join(dir, name)
      fs.writeFileSync(file, text, { mode: 0o600 })
      return file
    },
    remove() {
      fs.rmSync(dir, { recursive: true, force: true })
    },
  }
}

/** Debian's chromium (playwright-core drives it; no browser is ever downloaded). */
export const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium'

/** The flags every browser test launches chromium with. */
export const CHROMIUM_FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
]

/** A port that was free a moment ago on 127.0.0.1. */
export async function freePort() {
  const server = net.createServer()
  await new Promise((resolve, reject) => server.listen(0, '127.0.0.1', resolve).once('error', reject))
  const { port } = server.address()
  await new Promise((resolve) => server.close(resolve))
  return port
}
