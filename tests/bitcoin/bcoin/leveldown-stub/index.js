'use strict';

// See package.json: bdb loads this module but uses it only for an on-disk database, and the
// tests run bcoin in memory. Any use is a mistake, said loudly.
module.exports = function leveldown(location) {
  throw new Error(`leveldown is a stub here (tests/bitcoin/bcoin): run bcoin with memory: true, not at ${location}`);
};
