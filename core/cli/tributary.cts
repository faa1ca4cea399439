#!/usr/bin/env -S node --max-semi-space-size=32 --expose-gc
/**
 * The `tributary` command (package.json `bin`): CommonJS, to set UV_THREADPOOL_SIZE before anything
 * starts libuv's thread pool. libuv reads it once, when the pool starts, and node's ES module loader
 * starts it reading an ES entry's files: set in main.js (Node 20), it was read too late and the pool kept
 * its 4 threads. node-rdkafka makes its blocking calls there, beside node's file writes, zlib and DNS
 * (docs/operations.md, libuv's thread pool in an outage): 16 unless the environment says how many.
 */
if (!process.env.UV_THREADPOOL_SIZE) process.env.UV_THREADPOOL_SIZE = '16';
void import('./main.js');
