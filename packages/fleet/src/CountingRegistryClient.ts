import { RegistryClient, type CallOptions, type FsContentStore, type RegistryClientOptions } from '@buildyard/oci';

type BlobDescriptor = Parameters<RegistryClient['pullBlob']>[1];

/**
 * A registry client that reports the bytes of every blob it actually fetched: pullBlob skips
 * blobs already in the local store, and those are not counted as pulled.
 */
export class CountingRegistryClient extends RegistryClient {
  constructor(private readonly onPulled: (bytes: number) => void, options: RegistryClientOptions = {}) {
    super(options);
  }

  override async pullBlob(repository: Parameters<RegistryClient['pullBlob']>[0], descriptor: BlobDescriptor, store?: FsContentStore, call?: CallOptions): ReturnType<RegistryClient['pullBlob']> {
    const target = store ?? this.store;
    const digest = typeof descriptor === 'string' ? descriptor : descriptor.digest;
    const had = target ? await target.has(digest) : false;
    const info = await super.pullBlob(repository, descriptor, store, call);
    if (!had) this.onPulled(info.size);
    return info;
  }
}
