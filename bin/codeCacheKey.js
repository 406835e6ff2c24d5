'use strict';
// What a chunk's code cache is made for, written at its head by scripts/bundle.mjs and compared by the launcher before
// the cache is handed to V8. V8 checks only the source's length, and a version hash without Node's own patch level:
// every Node 20 release accepted another's cache, whose bytecode it then ran wrong (the CLI failed at start). So the
// key is the chunk's bytes, and the exact Node, V8 and architecture that compiled it. And the cache's own bytes: V8
// checks a cache's length but (in release builds) not its contents, and a cache damaged in place (bit rot, a block of
// zeros after a crash) crashed the CLI at start with a segmentation fault.
// CRC-32 where Node has it (zlib.crc32, Node 20.15 on): it finds damage and a mismatch as surely as SHA-1 (nobody
// forges a cache who can write the chunk beside it), for a tenth of the CPU: SHA-1 over the caches a run loads was
// 20 M instructions of every start's 360 M (docs/performance.md). The same Node makes and checks a key, so both
// take the same way.
const { crc32 } = require('node:zlib');

/** The length of the key at the head of a cache file. */
exports.CODE_CACHE_KEY_LENGTH = 20;

const thisNode = `\0${process.version}\0${process.versions.v8}\0${process.arch}\0`;

/**
 * 20 bytes for `source`, the Node that runs this, and `cache`, V8's data compiled from `source`: the CRC-32 of each
 * and the two lengths, or with a Node without zlib.crc32, SHA-1 of the three.
 */
exports.codeCacheKey = (source, cache) => {
  if (typeof crc32 !== 'function') return require('node:crypto').createHash('sha1').update(source).update(thisNode).update(cache).digest();
  const key = Buffer.allocUnsafe(20);
  key.writeUInt32BE(crc32(source), 0);
  key.writeUInt32BE(crc32(thisNode), 4);
  key.writeUInt32BE(crc32(cache), 8);
  key.writeUInt32BE(source.length, 12);
  key.writeUInt32BE(cache.length, 16);
  return key;
};
