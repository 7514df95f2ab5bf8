// Loaded by the commands that talk to a registry (imagetools, login): the registry client.
import { RegistryClient, dockerConfigPath } from '@buildyard/oci';

export { inspectImage, createIndex, login } from '@buildyard/client';

export function registryClient(env: NodeJS.ProcessEnv): RegistryClient {
  const insecure = (env.BUILDYARD_INSECURE_REGISTRIES ?? '').split(',').map((s) => s.trim()).filter(Boolean);
  return new RegistryClient({ dockerConfig: dockerConfigPath(env), insecureHosts: insecure });
}
