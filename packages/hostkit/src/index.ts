// Public API of @buildyard/hostkit: what running Buildyard on one machine needs outside tests —
// `buildyard up` and the test clusters of @buildyard/testkit both use it. Busybox base images
// built from Debian's busybox-static (no internet), free loopback ports, system command checks,
// and removal of the runc containers and mounts killed workers leave under a state dir.
export { seedBusybox, busyboxRootfs, busyboxLayout, cacheRoot, type SeededImage, type BusyboxArch } from './busybox.js';
export { cleanupUnder } from './cleanupUnder.js';
export { freePort, hasCommand, requireCommand } from './host.js';
export { generateEndpointPki, type EndpointPki } from './pki.js';
