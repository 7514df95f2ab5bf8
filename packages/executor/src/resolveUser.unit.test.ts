import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parseGroup, parsePasswd, resolveUser, resolveUserFromFiles } from './resolveUser.js';

const passwd = parsePasswd([
  'root:x:0:0:root:/root:/bin/sh',
  '# comment',
  'app:x:1000:1000:app:/home/app:/bin/sh',
  'svc:x:1001:1001::/srv:/bin/false',
  '',
].join('\n'));
const group = parseGroup([
  'root:x:0:',
  'wheel:x:10:root',
  'app:x:1000:',
  'staff:x:50:app,svc',
  'audio:x:63:root, app',
  'svc:x:1001:',
].join('\n'));

describe('resolveUserFromFiles (Docker USER rules)', () => {
  const r = (spec: string) => resolveUserFromFiles(spec, passwd, group);

  it('name -> uid, primary gid, supplementary groups listing the user, home', () => {
    assert.deepEqual(r('app'), { uid: 1000, gid: 1000, additionalGids: [50, 63], home: '/home/app' });
    assert.deepEqual(r('svc'), { uid: 1001, gid: 1001, additionalGids: [50], home: '/srv' });
  });
  it('numeric uid in passwd behaves like the name', () => {
    assert.deepEqual(r('1000'), { uid: 1000, gid: 1000, additionalGids: [50, 63], home: '/home/app' });
  });
  it('numeric uid not in passwd is allowed, gid 0', () => {
    assert.deepEqual(r('4242'), { uid: 4242, gid: 0, additionalGids: [], home: '/' });
  });
  it('name:group uses the group and no supplementary groups', () => {
    assert.deepEqual(r('app:staff'), { uid: 1000, gid: 50, additionalGids: [], home: '/home/app' });
    assert.deepEqual(r('app:777'), { uid: 1000, gid: 777, additionalGids: [], home: '/home/app' });
  });
  it('uid:gid takes the fast path', () => {
    assert.deepEqual(r('1234:5678'), { uid: 1234, gid: 5678, additionalGids: [], home: '/' });
    assert.deepEqual(r('root:root'), { uid: 0, gid: 0, additionalGids: [], home: '/root' });
  });
  it('default user is root with root\'s groups, and 0:0 without passwd', () => {
    assert.deepEqual(r(''), { uid: 0, gid: 0, additionalGids: [10, 63], home: '/root' });
    assert.deepEqual(resolveUserFromFiles('', undefined, undefined), { uid: 0, gid: 0, additionalGids: [], home: '/' });
  });
  it('unknown names fail with moby\'s messages', () => {
    assert.throws(() => r('ghost'), { message: 'unable to find user ghost: no matching entries in passwd file' });
    assert.throws(() => r('app:ghosts'), { message: 'unable to find group ghosts: no matching entries in group file' });
    assert.throws(() => resolveUserFromFiles('app', undefined, undefined), { message: 'unable to find user app: no matching entries in passwd file' });
  });
  it('rejects ids out of range', () => {
    assert.throws(() => r('99999999999'), /out of range/);
  });
});

describe('resolveUser reads the rootfs files, following links inside the rootfs only', () => {
  let root: string;
  before(() => {
    root = mkdtempSync(join(tmpdir(), 'buildyard-user-'));
    mkdirSync(join(root, 'etc'));
    mkdirSync(join(root, 'data'));
    writeFileSync(join(root, 'data/passwd'), 'app:x:1000:1000:app:/home/app:/bin/sh\n');
    // An absolute link must resolve inside the rootfs, never to the host's /etc/group.
    symlinkSync('/data/passwd', join(root, 'etc/passwd'));
    symlinkSync('/etc/nonexistent-group-file', join(root, 'etc/group'));
  });
  after(() => rmSync(root, { recursive: true, force: true }));

  it('resolves through an absolute symlink', async () => {
    assert.deepEqual(await resolveUser(root, 'app'), { uid: 1000, gid: 1000, additionalGids: [], home: '/home/app' });
    assert.deepEqual(await resolveUser(root, 'app:50'), { uid: 1000, gid: 50, additionalGids: [], home: '/home/app' });
  });
  it('a missing group file means a named group cannot be found', async () => {
    await assert.rejects(resolveUser(root, 'app:root'), { message: 'unable to find group root: no matching entries in group file' });
  });
});
