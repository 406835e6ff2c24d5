/** Which Content-Type a copy writes: the source's, unless it says nothing and the row names one. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { typeToWrite } from '../../src/storage/types.js';

test('a source type that says nothing yields to the row’s; any other source type stands', () => {
  for (const generic of [undefined, '', 'application/octet-stream', 'Binary/Octet-Stream', 'application/octet-stream; charset=binary']) {
    assert.equal(typeToWrite(generic, 'video/mp4'), 'video/mp4', `${generic}`);
  }
  assert.equal(typeToWrite('image/gif', 'image/png'), 'image/gif', 'the style Paperclip detected, not the row’s guess');
  // A row that names nothing keeps what the source has.
  assert.equal(typeToWrite('application/octet-stream', undefined), 'application/octet-stream');
  assert.equal(typeToWrite('application/octet-stream', 'application/octet-stream'), 'application/octet-stream');
  assert.equal(typeToWrite(undefined, 'application/octet-stream'), 'application/octet-stream');
  assert.equal(typeToWrite(undefined, undefined), undefined);
});
