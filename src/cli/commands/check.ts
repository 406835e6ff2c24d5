/**
 * `mastosync check [--config FILE] [--json]`: a preflight that writes nothing. It loads the config, connects to
 * the database (through the SSH tunnel when configured), proves the session is read-only, lists the Mastodon
 * tables and storage-schema version columns it finds, lists one key of the source and destination, and looks for the
 * newest owned objects at the source (an empty mount point answers too). One line per check,
 * `ok` or `FAIL` with the reason; every check runs even when an earlier one failed, so one pass shows every
 * problem. Exit 2 when any failed.
 */
import type { Logger } from '../../log.js';
import { connectDatabase, type Database } from '../../db/connection.js';
import { grantFor, hasTable, missingOptionalColumns, newerSchemaWarning, probeSchema, unreadableTables, type Schema } from '../../db/schema.js';
import { UnavailableError, UsageError, describeError } from '../../errors.js';
import { JOB_NAMES } from '../../mastodon/tables.js';
import { PROBED_JOBS, lookForNewest } from '../../sync/source.js';
import type { ObjectStore } from '../../storage/types.js';
import { loadConfigParts, locateConfig, type Config, type ConfigParts } from '../config.js';
import { EXIT, type Output } from '../exit.js';
import { createStore, samePlace } from '../../storage/index.js';

interface CheckFlags {
  readonly config?: string;
  readonly json: boolean;
}

interface CheckResult {
  /** `config`, `database`, `session`, `table <name>`, `source`, `destination`. */
  readonly check: string;
  readonly ok: boolean;
  /** What was found, or why it failed and what to fix. */
  readonly detail: string;
  /** Passed, but the admin should know (a database newer than mastosync knows): `warn`, and exit 0. */
  readonly warning?: boolean;
}

export async function checkCommand(flags: CheckFlags, log: Logger, out: Output): Promise<number> {
  const results: CheckResult[] = [];
  const report = (result: CheckResult) => {
    results.push(result);
    if (!flags.json) out.stdout(formatResult(result));
  };

  let config: ConfigParts | undefined;
  try {
    // A store not configured yet (the destination, right after `init --from-env`) is that store's failure below.
    config = loadConfigParts(locateConfig(flags.config, process.env), process.env);
    for (const notice of config.notices) log.info(notice);
    for (const warning of config.warnings) log.warn(warning);
    report({ check: 'config', ok: true, detail: config.origin });
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    report({ check: 'config', ok: false, detail: error.message });
  }
  if (config) {
    // The session that passed is the one the source's objects are looked up with: a second one would wait for a
    // database that went away meanwhile as a run's start does (5 min), when check tells what is wrong now (review L8).
    const session = await checkDatabase(config, log, report);
    try {
      await checkStore(config, 'source', report);
      // A source that answers may still be the wrong one (an empty mount point, another bucket): look for objects.
      const failed = (check: string) => results.some((result) => result.check === check && !result.ok);
      if (session !== undefined && !(config.source instanceof UsageError) && !failed('source')) await checkSourceObjects(session, config.source, report);
    } finally {
      await session?.db.close();
    }
    await checkStore(config, 'destination', report);
    const shared = config.source instanceof UsageError || config.destination instanceof UsageError ? undefined : samePlace(config.source, config.destination);
    if (shared !== undefined) {
      report({
        check: 'destination',
        ok: false,
        detail: `[source] and [destination] are the same place, ${shared}: point [destination] at the new bucket or folder`,
      });
    }
  }

  const ok = results.every((result) => result.ok);
  if (flags.json) out.stdout(JSON.stringify({ ok, checks: results }));
  return ok ? EXIT.ok : EXIT.usage;
}

/** The session and its schema when the database and its tables pass, for the look at the source's objects. */
async function checkDatabase(
  config: ConfigParts,
  log: Logger,
  report: (result: CheckResult) => void,
): Promise<{ readonly db: Database; readonly schema: Schema } | undefined> {
  let db: Database | undefined;
  try {
    // check tells what is wrong now: it does not wait for a database that does not answer yet, as a run does.
    db = await connectDatabase(config.database, log, { startPatienceMs: 0 });
  } catch (error) {
    report({ check: 'database', ok: false, detail: reason(error) });
    return undefined;
  }
  let passed = false;
  try {
    const hostKey = db.hostKeyFingerprint === undefined ? '' : ` (ssh host key ${db.hostKeyFingerprint} verified)`;
    report({ check: 'database', ok: true, detail: `${db.description}${hostKey}` });

    // As every read runs (src/db/connection.ts, READ_TRANSACTION): in a read-only transaction with a statement timeout.
    const [session] = await db.query<{ read_only: string; statement_timeout: string; application_name: string; version: string }>(
      `SELECT current_setting('transaction_read_only') AS read_only,
              current_setting('statement_timeout') AS statement_timeout,
              current_setting('application_name') AS application_name,
              current_setting('server_version') AS version`,
    );
    const harmless = session?.read_only === 'on' && session.statement_timeout !== '0' && session.application_name === 'mastosync';
    report({
      check: 'session',
      ok: harmless,
      detail: harmless
        ? `read-only, application_name mastosync, PostgreSQL ${session.version}`
        : `expected read-only reads with a statement timeout, named mastosync; got transaction_read_only=${session?.read_only}, statement_timeout=${session?.statement_timeout}, application_name=${session?.application_name}`,
    });

    const schema = await probeSchema(db);
    const present = JOB_NAMES.filter((job) => hasTable(schema, job));
    if (present.length === 0) {
      report({
        check: 'tables',
        ok: false,
        detail: `none of Mastodon's tables (${JOB_NAMES.join(', ')}) is in ${db.description}: is [database] the Mastodon database?`,
      });
      return undefined;
    }
    for (const job of JOB_NAMES) {
      if (!present.includes(job)) {
        report({ check: `table ${job}`, ok: true, detail: 'absent (not in this Mastodon version): run all skips it' });
        continue;
      }
      const refused = unreadableTables(schema, [job]);
      if (refused.length > 0) {
        report({ check: `table ${job}`, ok: false, detail: `role ${schema.role} may not read ${refused.join(', ')}: ${grantFor(schema, refused)}` });
        continue;
      }
      const versions = [...(schema.columns.get(job) ?? [])].filter((column) => column.endsWith('_storage_schema_version')).sort();
      // Models without `local?` never had a storage schema version (docs/storage-layout.md §1.2, §2), so its absence says nothing about the version.
      const lacking = missingOptionalColumns(schema, job);
      report({
        check: `table ${job}`,
        ok: true,
        detail: `version columns: ${versions.length > 0 ? versions.join(', ') : 'none'}${lacking.length > 0 ? `; older layout, lacks ${lacking.join(', ')}` : ''}`,
      });
    }
    const newer = newerSchemaWarning(schema);
    if (newer !== undefined) report({ check: 'schema', ok: true, warning: true, detail: newer });
    passed = true;
    return { db, schema };
  } catch (error) {
    report({ check: 'database', ok: false, detail: `connected, but a query failed: ${reason(error)}` });
    return undefined;
  } finally {
    if (!passed) await db.close();
  }
}

async function checkStore(config: ConfigParts, role: 'source' | 'destination', report: (result: CheckResult) => void): Promise<void> {
  const settings = config[role];
  if (settings instanceof UsageError) {
    report({ check: role, ok: false, detail: settings.message });
    return;
  }
  let store: ObjectStore | undefined;
  try {
    store = createStore(settings, { role, concurrency: 1 });
    await store.check();
    const answered = settings.type === 's3' || settings.type === 'azure' ? 'answers a listing' : 'answers: the container exists';
    // A bucket's check only reads: credentials that may list but not write pass it, and the run stops at its first write.
    // So does a storage class or an ACL the provider refuses: check writes no probe object, which a versioned or
    // locked bucket would keep, and which a storage class with a minimum duration would bill for months.
    const checked =
      settings.type === 'fs'
        ? role === 'source'
          ? 'is readable'
          : 'is writable'
        : role === 'source'
          ? answered
          : `${answered}; writing${sentSettings(config.destination)} not checked`;
    report({ check: role, ok: true, detail: `${store.description} ${checked}` });
  } catch (error) {
    report({ check: role, ok: false, detail: reason(error) });
  } finally {
    store?.close();
  }
}

/** ` with acl "public-read" and storage_class "X"`: what each write carries that the provider may refuse. */
function sentSettings(destination: ConfigParts['destination']): string {
  if (destination instanceof UsageError || destination.type !== 's3') return '';
  const sent = [...(destination.acl ? [`acl "${destination.acl}"`] : []), ...(destination.storageClass ? [`storage_class "${destination.storageClass}"`] : [])];
  return sent.length === 0 ? '' : ` with ${sent.join(' and ')}`;
}

/**
 * Whether the source holds what the database says it should: the originals of the newest rows, each at its key or
 * a legacy one, as a run looks for them. None found is a FAIL: the source answers, but it is not Mastodon's (an
 * unmounted public/system, another bucket or key_prefix), and a run would record every object missing.
 */
async function checkSourceObjects(
  { db, schema }: { readonly db: Database; readonly schema: Schema },
  settings: Config['source'],
  report: (result: CheckResult) => void,
): Promise<void> {
  let store: ObjectStore | undefined;
  try {
    store = createStore(settings, { role: 'source', concurrency: 1 });
    const { looked, found } = await lookForNewest(db, schema, store);
    const what = `the newest ${PROBED_JOBS.join(' and ')} objects`;
    report(
      looked.length === 0
        ? { check: 'source objects', ok: true, detail: `the database owns no ${PROBED_JOBS.join(' or ')} object to look for` }
        : found === 0
          ? {
              check: 'source objects',
              ok: false,
              detail: `none of ${what} (${looked.length}, e.g. ${looked[0]}) is at ${store.description}: is it Mastodon's bucket or folder (mounted, right bucket, right key_prefix)?`,
            }
          : { check: 'source objects', ok: true, detail: `${found} of ${what} (${looked.length}) found at ${store.description}` },
    );
  } catch (error) {
    report({ check: 'source objects', ok: false, detail: reason(error) });
  } finally {
    store?.close();
  }
}

function reason(error: unknown): string {
  return error instanceof UsageError || error instanceof UnavailableError ? error.message : describeError(error);
}

/** `ok   <check>: <detail>` or `FAIL <check>: <reason>`; a reason's further lines (pinning help) are indented. */
function formatResult(result: CheckResult): string {
  const [first, ...rest] = result.detail.split('\n');
  return [`${!result.ok ? 'FAIL' : result.warning ? 'warn' : 'ok  '} ${result.check}: ${first}`, ...rest.map((line) => `     ${line}`)].join('\n');
}
