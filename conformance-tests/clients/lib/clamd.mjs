// A clamd of the test's own on a free 127.0.0.1 port, with a database that holds only the EICAR
// test signature (no internet here, so no freshclam; clamd refuses an empty database), as
// conformance-tests/tests/pipeline.rs starts one. Needs Debian's clamav-daemon.
import { spawn } from 'node:child_process'
import fs from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'

import { artifacts, freePort, sleep } from './helpers.mjs'

/** The 68-byte EICAR test file, assembled at run time so this source trips no scanner. */
export function eicar() {
  return Buffer.from(['X5O!P%@AP[4\\PZX54(P^)7CC)7}$', 'EICAR-STANDARD-ANTIVIRUS-TEST-FILE!', '$H+H*'].join(''))
}

function clamdBinary() {
  const found = ['/usr/sbin/clamd', '/usr/bin/clamd', '/usr/local/sbin/clamd'].find((p) => fs.existsSync(p))
  if (!found) throw new Error('clamd not found: apt-get install clamav-daemon (scripts/test-all.sh does)')
  return found
}

/** Sends `zPING\0`; resolves whether `PONG` came back within 2 s. */
function ping(port) {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1')
    let reply = ''
    const done = (ok) => {
      socket.destroy()
      resolve(ok)
    }
    socket.setTimeout(2_000, () => done(false))
    socket.on('error', () => done(false))
    socket.on('connect', () => socket.write('zPING\0'))
    socket.on('data', (d) => {
      reply += d.toString('latin1')
      if (reply.includes('PONG')) done(true)
    })
    socket.on('end', () => done(reply.includes('PONG')))
  })
}

/** Starts clamd; resolves `{ address: 'tcp://127.0.0.1:PORT', stop() }` once it answers PING. */
export async function startClamd({ timeoutMs = 60_000 } = {}) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tus-clamd-'))
  fs.mkdirSync(path.join(dir, 'db'))
  const hex = eicar().subarray(0, 64).toString('hex')
  fs.writeFileSync(path.join(dir, 'db/eicar.ndb'), `Eicar-Test-Signature-Body:0:*:${hex}\n`)
  const port = await freePort()
  fs.writeFileSync(
    path.join(dir, 'clamd.conf'),
    [
      'Foreground yes',
      `DatabaseDirectory ${dir}/db`,
      `TCPSocket ${port}`,
      'TCPAddr 127.0.0.1',
      'StreamMaxLength 100M',
      'MaxFileSize 100M',
      'MaxScanSize 400M',
      'SelfCheck 0',
      'Bytecode no',
      `LogFile ${dir}/clamd.log`,
      '',
    ].join('\n'),
  )
  const child = spawn(clamdBinary(), ['-c', path.join(dir, 'clamd.conf')], { stdio: 'ignore' })
  const exited = new Promise((resolve) => child.once('exit', resolve))
  const kill = () => child.kill('SIGKILL')
  process.on('exit', kill)

  const saveLog = () => {
    try {
      fs.mkdirSync(path.join(artifacts, 'logs'), { recursive: true })
      fs.copyFileSync(path.join(dir, 'clamd.log'), path.join(artifacts, 'logs', 'direct-s3-clamd.log'))
    } catch {
      // no log yet
    }
  }
  async function stop() {
    process.off('exit', kill)
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM')
      const killer = setTimeout(kill, 5_000)
      await exited
      clearTimeout(killer)
    }
    saveLog()
    fs.rmSync(dir, { recursive: true, force: true })
  }

  const deadline = Date.now() + timeoutMs
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) {
      saveLog()
      const log = fs.existsSync(path.join(dir, 'clamd.log')) ? fs.readFileSync(path.join(dir, 'clamd.log'), 'utf8') : ''
      await stop()
      throw new Error(`clamd exited (code ${child.exitCode}); its log:\n${log.slice(-2000)}`)
    }
    if (await ping(port)) break
    if (Date.now() > deadline) {
      await stop()
      throw new Error(`clamd did not answer PING within ${timeoutMs} ms`)
    }
    await sleep(100)
  }
  return { address: `tcp://127.0.0.1:${port}`, stop }
}
