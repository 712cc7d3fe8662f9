// @tus/server peer for the benchmark harness in bench/ (started by it; not meant to be run by hand).
//
//   node server.mjs file <upload-dir>
//   node server.mjs s3 <endpoint> <bucket>          (credentials from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY)
//
// Listens on 127.0.0.1 on a free port and prints `@tus/server listening on http://127.0.0.1:<port>/files/`.
import http from 'node:http';
import { Server } from '@tus/server';
import { FileStore } from '@tus/file-store';
import { S3Store } from '@tus/s3-store';

const [kind, a, b] = process.argv.slice(2);
let datastore;
if (kind === 'file') {
  datastore = new FileStore({ directory: a });
} else if (kind === 's3') {
  datastore = new S3Store({
    partSize: 8 * 1024 * 1024,
    useTags: false,
    s3ClientConfig: {
      bucket: b,
      endpoint: a,
      region: 'us-east-1',
      forcePathStyle: true,
      credentials: {
        accessKeyId: process.env.AWS_ACCESS_KEY_ID ?? 'test',
        secretAccessKey: process.env.AWS_SECRET_ACCESS_KEY ?? 'test',
      },
    },
  });
} else {
  console.error('usage: node server.mjs file <dir> | s3 <endpoint> <bucket>');
  process.exit(2);
}

const tus = new Server({ path: '/files', datastore });
const server = http.createServer((req, res) => tus.handle(req, res));
server.keepAliveTimeout = 60_000;
server.listen(0, '127.0.0.1', () => {
  console.log(`@tus/server listening on http://127.0.0.1:${server.address().port}/files/`);
});
for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => process.exit(0));
