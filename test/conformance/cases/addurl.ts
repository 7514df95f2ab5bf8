// ADD <url> (dockerfile_add_test.go, dockerfile_test.go testDockerfileAddURL/…Checksum): the file
// comes from a web server both builders reach (Case.served, `{{URL}}` in the Dockerfile).
import type { Case } from '../lib/types.js';
import { copyFlagsHistory, error } from './upstream.js';

const LABS = 'ADD --checksum left the labs channel (Dockerfile 1.6)';

const LAST_MODIFIED = 'Wed, 21 Oct 2015 07:28:00 GMT';
const BODY = 'served content\n';
// sha256 of BODY.
const BODY_DIGEST = 'sha256:cc0f982a5948b257798bfb15f566eaabc70df6aedd5cb9e7593524f78e4e4d47';

export const cases: Case[] = [
  { name: 'add-url-into-dir', dockerfile: 'FROM {{BASE}}\nADD {{URL}}/files/data.txt /dl/\n', served: { body: BODY, lastModified: LAST_MODIFIED } },
  { name: 'add-url-to-file', dockerfile: 'FROM {{BASE}}\nADD {{URL}}/files/data.txt /renamed\n', served: { body: BODY } },
  { name: 'add-url-into-existing-dir', dockerfile: 'FROM {{BASE}}\nADD {{URL}}/files/data.txt /etc\n', served: { body: BODY } },
  { name: 'add-url-root-unnamed', dockerfile: 'FROM {{BASE}}\nADD {{URL}}/ /dl/\n', served: { body: BODY } },
  { name: 'add-url-query-ignored-in-name', dockerfile: 'FROM {{BASE}}\nADD {{URL}}/get/tool.sh?version=2 /dl/\n', served: { body: BODY } },
  { name: 'add-url-content-disposition-ignored', dockerfile: 'FROM {{BASE}}\nADD {{URL}}/download /dl/\n', served: { body: BODY, contentDisposition: 'attachment; filename="other.txt"' } },
  { name: 'add-url-chmod-chown', upstream: copyFlagsHistory('--chown=daemon:daemon --chmod=755'), dockerfile: 'FROM {{BASE}}\nADD --chmod=755 --chown=daemon:daemon {{URL}}/x.sh /usr/local/bin/\n', served: { body: '#!/bin/sh\necho x\n' } },
  { name: 'add-url-workdir-relative', dockerfile: 'FROM {{BASE}}\nWORKDIR /app\nADD {{URL}}/a.txt sub/\n', served: { body: BODY } },
  { name: 'add-url-several', dockerfile: 'FROM {{BASE}}\nADD {{URL}}/one.txt {{URL}}/two.txt /dl/\n', served: { body: BODY } },
  { name: 'add-url-and-context-file', dockerfile: 'FROM {{BASE}}\nADD local.txt {{URL}}/remote.txt /dl/\n', files: { 'local.txt': 'local\n' }, served: { body: BODY } },
  { name: 'add-url-checksum-ok', upstream: { change: `${LABS}; the checksum is not in the history`, equivalent: { dockerfile: 'FROM {{BASE}}\nADD {{URL}}/data.txt /data.txt\n' } }, dockerfile: `FROM {{BASE}}\nADD --checksum=${BODY_DIGEST} {{URL}}/data.txt /data.txt\n`, served: { body: BODY } },
  { name: 'add-url-checksum-mismatch', upstream: { change: `${LABS}; source/http/source.go Snapshot: "digest mismatch <got>: <expected>"`, expect: error('digest mismatch sha256:<digest>: sha256:<digest>') }, dockerfile: `FROM {{BASE}}\nADD --checksum=sha256:${'0'.repeat(64)} {{URL}}/data.txt /data.txt\n`, served: { body: BODY } },
];
