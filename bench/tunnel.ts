/**
 * `npm run bench:tunnel`: how long 200,000 media_attachments rows take to stream through a real OpenSSH tunnel
 * with the tool's own page query, at several batch sizes (issue 3: under 2 s at the default 10000).
 * Needs /usr/sbin/sshd (Debian: openssh-server). Prints a Markdown table for BENCHMARKS.md.
 */
import os from 'node:os';
import pino from 'pino';
import { connectDatabase } from '../src/db/connection.js';
import { readRowPages } from '../src/db/rows.js';
import { probeSchema } from '../src/db/schema.js';
import { createDatabase, startPostgres } from '../test/support/postgres.js';
import { isSshdAvailable, startSshd } from '../test/support/sshd.js';

const ROWS = Number(process.env.BENCH_ROWS ?? 200_000);
const BATCH_SIZES = [1_000, 10_000, 50_000];
const ROUNDS = 3;

if (!isSshdAvailable()) {
  console.error('bench:tunnel needs /usr/sbin/sshd (apt-get install openssh-server)');
  process.exit(2);
}

const postgres = await startPostgres();
const db = await createDatabase('current');
const sshd = await startSshd();
try {
  await db.client.query(
    `INSERT INTO media_attachments (id, account_id, status_id, file_file_name, file_content_type, file_file_size,
                                    file_storage_schema_version, remote_url, created_at, updated_at)
     SELECT g, g % 1000, g, substr(md5(g::text), 1, 16) || '.png', 'image/png', 12345, 1,
            CASE WHEN g % 3 = 0 THEN 'https://remote.example/' || g ELSE '' END, now(), now()
       FROM generate_series(1, $1::int) AS g`,
    [ROWS],
  );
  await db.client.query('ANALYZE media_attachments');
  const url = new URL(db.url);
  const results: string[] = [];
  for (const batchSize of BATCH_SIZES) {
    const session = await connectDatabase(
      {
        connectionString: db.url,
        host: '127.0.0.1',
        port: Number(url.port),
        ssl: false,
        batchSize,
        ssh: { host: sshd.host, port: sshd.port, user: sshd.user, privateKey: sshd.clientKeyPath, hostKey: sshd.hostKeyFingerprint },
      },
      pino({ level: 'silent' }),
    );
    try {
      const schema = await probeSchema(session);
      const timings: number[] = [];
      for (let round = 0; round < ROUNDS; round++) {
        const started = performance.now();
        let rows = 0;
        for await (const page of readRowPages(session, schema, 'media_attachments', { batchSize })) rows += page.length;
        if (rows !== ROWS) throw new Error(`read ${rows} rows, expected ${ROWS}`);
        timings.push(performance.now() - started);
      }
      results.push(`| ${batchSize} | ${timings.map((ms) => `${ms.toFixed(0)} ms`).join(', ')} | ${Math.min(...timings).toFixed(0)} ms |`);
    } finally {
      await session.close();
    }
  }
  console.log(`# ${ROWS} rows through an OpenSSH tunnel (${os.cpus().length} cores, node ${process.version}, ${new Date().toISOString()})\n`);
  console.log('| batch_size | rounds | best |\n|---|---|---|');
  for (const line of results) console.log(line);
} finally {
  await sshd.stop();
  await db.drop();
  await postgres.stop();
}
