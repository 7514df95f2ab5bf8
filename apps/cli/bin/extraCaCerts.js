// NODE_EXTRA_CA_CERTS as Node applies it, but read on the first TLS connection instead of at
// start-up (bin/buildyard hands the variable over as BUILDYARD_DEFERRED_CA_CERTS; see there).
// Hand-written: Node 20 has no API to add to its default CA store (tls.setDefaultCACertificates
// is Node 22.15+), so the one function every TLS client goes through (tls.connect, https,
// fetch's undici and gRPC's credentials all call tls.createSecureContext) gets the store Node
// would have built: its own root certificates and the file's, whenever the caller names no CA
// of its own (Node too ignores the extra certificates for a context given `ca`).
'use strict';
const fs = require('node:fs');

/** Restores NODE_EXTRA_CA_CERTS for child processes and defers reading `file` to the first TLS context. */
function deferExtraCaCerts(file) {
  delete process.env.BUILDYARD_DEFERRED_CA_CERTS;
  // Processes this one starts (`buildyard up`'s cluster, git) get the variable as it was set.
  process.env.NODE_EXTRA_CA_CERTS = file;
  const tls = require('node:tls');
  const createSecureContext = tls.createSecureContext;
  let read = false;
  let ca;
  tls.createSecureContext = function createSecureContextWithExtraCerts(options) {
    if (options && options.ca) return createSecureContext.call(this, options);
    if (!read) {
      read = true;
      try {
        ca = [...tls.rootCertificates, fs.readFileSync(file, 'utf8')];
      } catch (err) {
        // Node's own words for a file it cannot read; it goes on with its own store.
        process.emitWarning(`Ignoring extra certs from \`${file}\`, load failed: ${err.message}`);
      }
    }
    return createSecureContext.call(this, ca ? { ...options, ca } : options);
  };
}

module.exports = { deferExtraCaCerts };
