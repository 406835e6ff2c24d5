/**
 * The .env.production reader: each case is a line as admins (or `mastodon:setup`) write it, with the value the
 * dotenv gem hands Mastodon for it, written out literally.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { parseEnvFile } from '../../src/cli/envFile.js';

const value = (text: string, key: string) => parseEnvFile(text).values.get(key);

describe('.env.production values', () => {
  const CASES: ReadonlyArray<[name: string, text: string, key: string, expected: string | undefined]> = [
    ['plain', 'S3_BUCKET=files.example.org\n', 'S3_BUCKET', 'files.example.org'],
    ['export prefix', 'export DB_HOST=db.internal\n', 'DB_HOST', 'db.internal'],
    ['spaces around =', 'DB_NAME = mastodon_production  \n', 'DB_NAME', 'mastodon_production'],
    ['colon separator', 'DB_USER: mastodon\n', 'DB_USER', 'mastodon'],
    ['empty value', 'S3_PERMISSION=\n', 'S3_PERMISSION', ''],
    ['unquoted: # starts a comment', 'DB_PASS=abc # the password\n', 'DB_PASS', 'abc'],
    ['unquoted: # starts a comment even without a space', 'DB_PASS=abc#def\n', 'DB_PASS', 'abc'],
    ['single quotes keep everything literally', "DB_PASS='a#b $HOME \\n \" x'\n", 'DB_PASS', 'a#b $HOME \\n " x'],
    ['single quotes, then a comment', "DB_PASS='secret' # comment\n", 'DB_PASS', 'secret'],
    ['double quotes keep # and spaces', 'DB_PASS=" a # b "\n', 'DB_PASS', ' a # b '],
    ['double quotes: \\" and \\\\ unescape', 'DB_PASS="say \\"hi\\" \\\\o/"\n', 'DB_PASS', 'say "hi" \\o/'],
    ['double quotes: \\n becomes a line break', 'KEY="line1\\nline2"\n', 'KEY', 'line1\nline2'],
    ['double quotes: \\$ is a literal $', 'DB_PASS="pa\\$word"\n', 'DB_PASS', 'pa$word'],
    ['unquoted: \\$ is a literal $', 'DB_PASS=pa\\$word\n', 'DB_PASS', 'pa$word'],
    ['CRLF line ends', 'S3_BUCKET=files\r\nS3_REGION=eu-west-1\r\n', 'S3_REGION', 'eu-west-1'],
    ['a later line wins', 'S3_BUCKET=old\nS3_BUCKET=new\n', 'S3_BUCKET', 'new'],
    ['lower-case and dotted keys', 'my.key=1\n', 'my.key', '1'],
    ['$( ) is never run', 'X=$(touch /tmp/pwned)\n', 'X', '$(touch /tmp/pwned)'],
  ];
  for (const [name, text, key, expected] of CASES) test(name, () => assert.equal(value(text, key), expected));
});

describe('variable references', () => {
  test('${VAR} and $VAR take earlier values of the file, in unquoted and double-quoted values', () => {
    const env = parseEnvFile('LOCAL_DOMAIN=social.example\nS3_KEY_PREFIX=${LOCAL_DOMAIN}\nA="$LOCAL_DOMAIN/x"\nB=\'${LOCAL_DOMAIN}\'\n');
    assert.equal(env.values.get('S3_KEY_PREFIX'), 'social.example');
    assert.equal(env.values.get('A'), 'social.example/x');
    assert.equal(env.values.get('B'), '${LOCAL_DOMAIN}', 'single quotes do not substitute');
  });

  test('an unknown variable is empty, as dotenv makes it; the process environment is not read', () => {
    process.env.MASTOSYNC_ENVFILE_TEST = 'from the process';
    try {
      assert.equal(value('DB_PASS=pa$$word\n', 'DB_PASS'), 'pa$');
      assert.equal(value('X=${MASTOSYNC_ENVFILE_TEST}\n', 'X'), '');
    } finally {
      delete process.env.MASTOSYNC_ENVFILE_TEST;
    }
  });

  test('a reference to a later line is empty (values are read top to bottom)', () => {
    assert.equal(value('A=$B\nB=1\n', 'A'), '');
  });
});

describe('file structure', () => {
  test('comments, blank lines and indentation', () => {
    const env = parseEnvFile('# Generated with mastodon:setup\n\n   # indented comment\n  LOCAL_DOMAIN=social.example\n');
    assert.deepEqual([...env.values], [['LOCAL_DOMAIN', 'social.example']]);
    assert.deepEqual(env.ignoredLines, []);
  });

  test('a quoted value may span lines; line numbers after it stay right', () => {
    const env = parseEnvFile('KEY="-----BEGIN\nmiddle\n-----END"\nnot a setting\nNEXT=1\n');
    assert.equal(env.values.get('KEY'), '-----BEGIN\nmiddle\n-----END');
    assert.equal(env.values.get('NEXT'), '1');
    assert.deepEqual(env.ignoredLines, [4]);
  });

  test('lines that are not settings are reported, not guessed at', () => {
    const env = parseEnvFile('GOOD=1\njust words\n=value\nBAD="unterminated\nQUOTED="x" trailing\nLAST=2\n');
    assert.deepEqual(Object.fromEntries(env.values), { GOOD: '1', LAST: '2' });
    assert.deepEqual(env.ignoredLines, [2, 3, 4, 5]);
  });
});
