import { readFileSync } from "node:fs";
import type { Config } from "./config";

/** The server TLS settings every entry point takes (Bun.serve `tls`, node:https options, Deno.serve cert/key), in the subset Arbiter uses. */
export interface ServerTlsOptions {
  cert: string;
  key: string;
  ca?: string;
  /** ask every client for a certificate … */
  requestCert?: boolean;
  /** … and end the handshake when there is none or it does not chain to `ca` */
  rejectUnauthorized?: boolean;
}

export class TlsSetupError extends Error {
  override name = "TlsSetupError";
}

function readPem(variable: string, path: string, marker: RegExp): string {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (error) {
    throw new TlsSetupError(`${variable}: cannot read ${path} (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`);
  }
  if (!marker.test(text)) throw new TlsSetupError(`${variable}: ${path} is not a PEM file of the expected kind`);
  return text;
}

const CERTIFICATE = /-----BEGIN CERTIFICATE-----/;
const PRIVATE_KEY = /-----BEGIN (?:EC |RSA |ENCRYPTED )?PRIVATE KEY-----/;

/**
 * The server's TLS options from the configuration, or undefined for plain HTTP. Files are read once
 * here so a missing or wrong file stops the start with one clear line instead of a failed handshake later.
 */
export function serverTlsOptions(config: Config): ServerTlsOptions | undefined {
  if (!config.TLS_CERT_FILE || !config.TLS_KEY_FILE) return undefined;
  const options: ServerTlsOptions = {
    cert: readPem("TLS_CERT_FILE", config.TLS_CERT_FILE, CERTIFICATE),
    key: readPem("TLS_KEY_FILE", config.TLS_KEY_FILE, PRIVATE_KEY),
  };
  if (config.TLS_CA_FILE) options.ca = readPem("TLS_CA_FILE", config.TLS_CA_FILE, CERTIFICATE);
  if (config.TLS_CLIENT_AUTH === "require") {
    options.requestCert = true;
    options.rejectUnauthorized = true;
  }
  return options;
}
