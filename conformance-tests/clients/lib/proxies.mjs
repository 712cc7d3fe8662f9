// Two small loopback proxies of the direct-to-S3 browser test (node:http / node:net only):
//
// - `startS3CorsProxy`: stands in front of an S3 server (moto, s3s-fs) that gives browsers no
//   CORS. It answers CORS preflights itself, adds `Access-Control-Allow-Origin` and
//   `Access-Control-Expose-Headers: ETag` to what it forwards, and forwards everything else with
//   the `Host` header unchanged (presigned URLs are signed for the host tus-server was configured
//   with: this proxy's). It logs every request (method, path, origin, body bytes, status, whether
//   the client went away mid-body) so a test can count the bytes that reached "S3", and can
//   throttle request bodies (to make an upload slow enough to pause mid-part).
// - `startTcpTap`: a byte-counting TCP pass-through (in front of tus-server), so a test can tell
//   how many bytes a browser sent to it.
import http from 'node:http'
import net from 'node:net'
import { Transform, pipeline } from 'node:stream'

import { assertLoopback } from './helpers.mjs'

const ALLOWED_METHODS = 'PUT, POST, GET, HEAD'

/**
 * Starts the CORS proxy on 127.0.0.1 in front of `target` (an `http://127.0.0.1:PORT` origin).
 * `allowOrigin`: the page origin to grant. `throttle`: `{ bytesPerSecond, methods, holdLastMs }`,
 * applied to the request bodies of cross-origin requests (with an `Origin` header) of those
 * methods: they are forwarded at `bytesPerSecond`, and their last bytes are held for
 * `holdLastMs` and dropped (the request cut) if the client has closed the connection by then.
 * (Chromium hands a whole 5 MiB part to the kernel at once, so an aborted XHR's part would
 * otherwise still arrive complete behind the abort, and S3 would store it.)
 *
 * Resolves `{ url, log, stats(), stop() }`. `log` entries: `{ method, path, origin, preflight,
 * reqBytes, reqLength (declared Content-Length), bodyHead (first 4 KiB of a POST body, text),
 * status, resBytes, clientAborted, complete, start, end }`.
 */
export async function startS3CorsProxy({ target, allowOrigin, throttle = null }) {
  assertLoopback(target)
  const upstream = new URL(target)
  const log = []
  const sockets = new Set()

  const server = http.createServer((req, res) => {
    const origin = req.headers.origin
    const granted = origin && origin === allowOrigin
    const entry = {
      method: req.method,
      path: req.url,
      origin: origin || null,
      preflight: false,
      reqBytes: 0,
      reqLength: req.headers['content-length'] === undefined ? null : Number(req.headers['content-length']),
      bodyHead: '',
      status: null,
      resBytes: 0,
      clientAborted: false,
      complete: false,
      start: Date.now(),
      end: null,
    }
    log.push(entry)

    if (req.method === 'OPTIONS' && origin && req.headers['access-control-request-method']) {
      entry.preflight = true
      entry.status = granted ? 204 : 403
      const headers = { Vary: 'Origin', 'Content-Length': '0' }
      if (granted) {
        Object.assign(headers, {
          'Access-Control-Allow-Origin': origin,
          'Access-Control-Allow-Methods': ALLOWED_METHODS,
          'Access-Control-Max-Age': '600',
        })
        const requested = req.headers['access-control-request-headers']
        if (requested) headers['Access-Control-Allow-Headers'] = requested
      }
      res.writeHead(entry.status, headers)
      res.end()
      entry.complete = true
      entry.end = Date.now()
      req.resume()
      return
    }

    const forward = http.request({
      host: upstream.hostname,
      port: upstream.port,
      method: req.method,
      path: req.url,
      // `Host` included, unchanged: SigV4 signs it.
      headers: req.headers,
    })
    let settled = false
    const finish = () => {
      if (!settled) {
        settled = true
        entry.end = Date.now()
      }
    }
    forward.on('response', (up) => {
      entry.status = up.statusCode
      const headers = { ...up.headers }
      if (granted) {
        headers['access-control-allow-origin'] = origin
        headers['access-control-expose-headers'] = 'ETag'
        headers.vary = headers.vary ? `${headers.vary}, Origin` : 'Origin'
      }
      res.writeHead(up.statusCode, up.statusMessage, headers)
      up.on('data', (chunk) => {
        entry.resBytes += chunk.length
      })
      pipeline(up, res, (err) => {
        if (!err) entry.complete = true
        finish()
      })
    })
    forward.on('error', (err) => {
      if (!res.headersSent && !entry.clientAborted) {
        res.writeHead(502, { 'Content-Type': 'text/plain' })
        res.end(`proxy: ${err.message}`)
      } else {
        res.destroy()
      }
      finish()
    })

    const throttled = throttle && origin && throttle.methods.includes(req.method)
    const rate = throttled ? throttle.bytesPerSecond : 0
    const holdLastMs = throttled ? throttle.holdLastMs || 0 : 0
    const socket = req.socket
    const clientGone = () => socket.destroyed || socket.readableEnded || entry.clientAborted
    const startedAt = Date.now()
    const counter = new Transform({
      transform(chunk, _encoding, callback) {
        if (req.method === 'POST' && entry.bodyHead.length < 4096) {
          entry.bodyHead += chunk.subarray(0, 4096 - entry.bodyHead.length).toString('latin1')
        }
        entry.reqBytes += chunk.length
        const last = entry.reqLength !== null && entry.reqBytes >= entry.reqLength
        const due = Math.max(rate ? startedAt + (entry.reqBytes / rate) * 1000 - Date.now() : 0, 0) + (last ? holdLastMs : 0)
        const pass = () => {
          // The body's last bytes go on only if the client is still waiting for the answer: a
          // client that aborted (closed the connection right behind its last bytes) gets no part.
          if (last && holdLastMs && clientGone()) {
            entry.clientAborted = true
            callback(new Error('the client went away before the last bytes were forwarded'))
          } else {
            callback(null, chunk)
          }
        }
        if (due > 0) setTimeout(pass, due)
        else pass()
      },
    })
    req.on('aborted', () => {
      entry.clientAborted = true
    })
    res.on('close', () => {
      if (!res.writableFinished) {
        entry.clientAborted = true
        forward.destroy()
      }
      finish()
    })
    pipeline(req, counter, forward, (err) => {
      if (err) {
        // The client went away mid-body: S3 must not get a short (or any) request.
        entry.clientAborted = true
        forward.destroy()
        finish()
      }
    })
  })
  server.keepAliveTimeout = 5_000
  server.on('connection', (socket) => {
    sockets.add(socket)
    socket.on('close', () => sockets.delete(socket))
  })
  await new Promise((resolve, reject) => server.listen(0, '127.0.0.1', resolve).once('error', reject))
  const url = `http://127.0.0.1:${server.address().port}`

  return {
    url,
    log,
    async stop() {
      for (const socket of sockets) socket.destroy()
      await new Promise((resolve) => server.close(resolve))
    },
  }
}

/**
 * A byte-counting TCP pass-through on 127.0.0.1 to `target` (an `http://127.0.0.1:PORT`
 * origin). Resolves `{ url, counts: { up, down, connections }, reset(), stop() }`: `up` is the
 * bytes clients sent (request lines, headers and bodies), `down` what they got back.
 */
export async function startTcpTap(target) {
  assertLoopback(target)
  const upstream = new URL(target)
  const counts = { up: 0, down: 0, connections: 0 }
  const sockets = new Set()
  const server = net.createServer((client) => {
    counts.connections += 1
    const server = net.connect(Number(upstream.port), upstream.hostname)
    for (const s of [client, server]) {
      sockets.add(s)
      s.on('close', () => sockets.delete(s))
      s.on('error', () => {
        client.destroy()
        server.destroy()
      })
    }
    client.on('data', (chunk) => {
      counts.up += chunk.length
    })
    server.on('data', (chunk) => {
      counts.down += chunk.length
    })
    client.pipe(server)
    server.pipe(client)
  })
  await new Promise((resolve, reject) => server.listen(0, '127.0.0.1', resolve).once('error', reject))
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    counts,
    reset() {
      counts.up = 0
      counts.down = 0
      counts.connections = 0
    },
    async stop() {
      for (const socket of sockets) socket.destroy()
      await new Promise((resolve) => server.close(resolve))
    },
  }
}
