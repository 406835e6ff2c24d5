'use strict';
// What a chunk's code cache is made for, written at its head by scripts/bundle.mjs and compared by the launcher before
// the cache is handed to V8. V8 checks only the source's length, and a version hash without Node's own patch level:
// every Node 20 release accepted another's cache, whose bytecode it then ran wrong (the CLI failed at start). So the
// key is the chunk's bytes, and the exact Node, V8 and architecture that compiled it.
const { createHash } = require('node:crypto');

/** SHA-1 (20 bytes) of `source` and of the Node that runs this. */
exports.codeCacheKey = (source) => createHash('sha1').update(source).update(`\0${process.version}\0${process.versions.v8}\0${process.arch}`).digest();
