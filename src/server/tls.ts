/**
 * HTTPS on the server's own listener (seed §Data Integrity "TLS for transport encryption"): the certificate chain and
 * key are read from PEM files, checked at start (a bad file is a ConfigError naming the key and the path), and read
 * again on SIGHUP: `server.setSecureContext()` makes new handshakes use them while connections already open keep
 * theirs, so a renewed certificate (certbot, an internal CA) is picked up without dropping a held request.
 */
import { readFileSync } from 'node:fs';
import { X509Certificate } from 'node:crypto';
import { createSecureContext } from 'node:tls';
import { ConfigError } from '../errors.js';

export interface TlsFiles {
  readonly certFile: string;
  readonly keyFile: string;
}

export interface TlsMaterial {
  readonly cert: Buffer;
  readonly key: Buffer;
  /** What the certificate says, for the log line: subject, SHA-256 fingerprint, expiry. */
  readonly summary: { subject: string; fingerprint256: string; validTo: string };
}

function read(path: string, key: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    throw new ConfigError([`tls.${key}: cannot read ${path}: ${(err as Error).message}`], 'server tls');
  }
}

/** Reads and checks the PEM files (the key must match the certificate). */
export function readTlsFiles(files: TlsFiles): TlsMaterial {
  const cert = read(files.certFile, 'certFile');
  const key = read(files.keyFile, 'keyFile');
  let x509: X509Certificate;
  try {
    x509 = new X509Certificate(cert);
  } catch (err) {
    throw new ConfigError([`tls.certFile: ${files.certFile} is not a PEM certificate: ${(err as Error).message}`], 'server tls');
  }
  try {
    createSecureContext({ cert, key, minVersion: 'TLSv1.2' });
  } catch (err) {
    throw new ConfigError(
      [`tls.keyFile: ${files.keyFile} is not a private key matching ${files.certFile}: ${(err as Error).message}`],
      'server tls',
    );
  }
  return { cert, key, summary: { subject: x509.subject, fingerprint256: x509.fingerprint256, validTo: x509.validTo } };
}
