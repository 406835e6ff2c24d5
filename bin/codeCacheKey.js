'use strict';
// What a chunk's code cache is made for, written at its head by scripts/bundle.mjs and compared by the launcher before
// the cache is handed to V8. V8 checks only the source's length, and a version hash without Node's own patch level:
// every Node 20 release accepted another's cache, whose bytecode it then ran wrong (the CLI failed at start). So the
// key is the chunk's bytes, and the exact Node, V8 and architecture that compiled it. And the cache's own bytes: V8
// checks a cache's length but (in release builds) not its contents, and a cache damaged in place (bit rot, a block of
// zeros after a crash) crashed the CLI at start with a segmentation fault.
const { createHash } = require('node:crypto');

/** The length of the key at the head of a cache file. */
exports.CODE_CACHE_KEY_LENGTH = 20;

/** SHA-1 (20 bytes) of `source`, of the Node that runs this, and of `cache`, V8's data compiled from `source`. */
exports.codeCacheKey = (source, cache) =>
  createHash('sha1').update(source).update(`\0${process.version}\0${process.versions.v8}\0${process.arch}\0`).update(cache).digest();
