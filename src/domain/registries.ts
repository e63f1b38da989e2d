/**
 * The embedded OCI store's name. Without FORGE_RELEASE_REGISTRY / FORGE_TRACKING_REGISTRY, release
 * and tracking images go to an OCI image layout store in the data dir, and their references name
 * this host (`forge.local/releases/o/r/p:<sha>`); a `docker` publisher without a `registry` field
 * pushes there too (`forge.local/<repository>:<tag>`).
 */
export const EMBEDDED_REGISTRY = 'forge.local';
export const EMBEDDED_RELEASE_REGISTRY = `${EMBEDDED_REGISTRY}/releases`;
export const EMBEDDED_TRACKING_REGISTRY = `${EMBEDDED_REGISTRY}/tracking`;

/** A registry setting: host[:port] with an optional repository path prefix, lowercase. */
export const REGISTRY_ADDRESS = /^[a-z0-9.-]+(?::\d+)?(?:\/[a-z0-9._-]+)*$/;

/** The host part of a registry address (`127.0.0.1:5000/releases` → `127.0.0.1:5000`). */
export const registryHost = (address: string): string => address.split('/')[0] ?? address;
