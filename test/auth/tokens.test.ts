import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { desc, eq, isNull } from "drizzle-orm";
import {
  base64url,
  createLocalJWKSet,
  decodeJwt,
  decodeProtectedHeader,
  exportPKCS8,
  generateKeyPair,
  importJWK,
  type JWK,
  jwtVerify,
  SignJWT,
} from "jose";
import { rotateSigningKey } from "../../src/auth/tokens";
import { operatorSessions, signingKeys } from "../../src/db/schema";
import { startTestApp, type TestApp } from "../helpers/app";
import { bearer, errorCode, issueToken, type ManualClock, manualClock } from "./support";

// Per file: Bun applies a preload's default timeout to the first file of a run only.
setDefaultTimeout(30_000);

let t: TestApp;
let clock: ManualClock;
beforeAll(async () => {
  clock = manualClock();
  t = await startTestApp({ clock, env: { TOKEN_TTL_SECONDS: "600", TOKEN_MAX_TTL_SECONDS: "1200" } });
}, 30_000);
afterAll(() => t.close());

const readKeys = (token: string) => t.request("/v1/keys?limit=1", { headers: bearer(token) });
const readDecisions = (token: string) => t.request("/v1/decisions?limit=1", { headers: bearer(token) });
const readDecisionsPermission = (token: string) => t.request("/v1/auth/token", { method: "POST", headers: bearer(token) });

async function expect401(res: Response, code: string) {
  expect(res.status).toBe(401);
  expect(await errorCode(res)).toBe(code);
}

/** Signs with the server's own stored private key, to forge tokens that differ in one claim. */
async function forge(claims: Record<string, unknown>, header: Record<string, unknown> = {}) {
  const [row] = await t.deps.database.db
    .select()
    .from(signingKeys)
    .where(isNull(signingKeys.retiredAt))
    .orderBy(desc(signingKeys.createdAt))
    .limit(1);
  const key = await importJWK(row!.privateJwk as JWK, "EdDSA");
  const nowS = Math.floor(clock.now().getTime() / 1000);
  const valid = decodeJwt(await issueToken(t, "admin"));
  return new SignJWT({ role: "admin", permissions: valid.permissions, ...claims })
    .setProtectedHeader({ alg: "EdDSA", kid: row!.kid, typ: "at+jwt", ...header })
    .setIssuer((claims.iss as string) ?? "arbiter")
    .setAudience((claims.aud as string) ?? "arbiter-api")
    .setSubject((claims.sub as string) ?? valid.sub!)
    .setJti((claims.jti as string) ?? valid.jti!)
    .setIssuedAt((claims.iat as number) ?? nowS)
    .setNotBefore((claims.nbf as number) ?? nowS)
    .setExpirationTime((claims.exp as number) ?? nowS + 600)
    .sign(key);
}

describe("issue and use", () => {
  test("an API key gets a signed EdDSA token with the documented claims; it authenticates like the key", async () => {
    const res = await t.request("/v1/auth/token", { as: "admin", method: "POST" });
    expect(res.status).toBe(200);
    expect(res.headers.get("cache-control")).toBe("no-store");
    const body = (await res.json()) as { access_token: string; expires_in: number; jti: string; token_type: string };
    expect(body.token_type).toBe("Bearer");
    expect(body.expires_in).toBe(600);
    const header = decodeProtectedHeader(body.access_token);
    expect(header).toMatchObject({ alg: "EdDSA", typ: "at+jwt" });
    expect(header.kid).toBeString();
    const claims = decodeJwt(body.access_token);
    expect(claims).toMatchObject({ sub: t.keyIds.admin, role: "admin", iss: "arbiter", aud: "arbiter-api", jti: body.jti });
    expect(claims.exp! - claims.iat!).toBe(600);

    // Verifiable by anyone holding the published JWKS.
    const jwks = (await (await t.request("/.well-known/jwks.json")).json()) as { keys: JWK[] };
    expect(jwks.keys.every((k) => k.d === undefined)).toBe(true);
    const verified = await jwtVerify(body.access_token, createLocalJWKSet(jwks), {
      issuer: "arbiter",
      audience: "arbiter-api",
      currentDate: clock.now(),
    });
    expect(verified.payload.sub).toBe(t.keyIds.admin);

    expect((await readKeys(body.access_token)).status).toBe(200);
  });

  test("permissions can be narrowed, never widened; TTL is capped at the maximum", async () => {
    const narrowed = await issueToken(t, "admin", { permissions: ["keys:read"] });
    expect(decodeJwt(narrowed).permissions).toEqual(["keys:read"]);
    expect((await readKeys(narrowed)).status).toBe(200);
    expect((await t.request("/v1/audit/auth", { headers: bearer(narrowed) })).status).toBe(403);

    const widen = await t.request("/v1/auth/token", { as: "service", method: "POST", json: { permissions: ["keys:create"] } });
    expect(widen.status).toBe(403);
    expect(await errorCode(widen)).toBe("privilege_escalation");

    const long = await t.request("/v1/auth/token", { as: "service", method: "POST", json: { ttl_seconds: 86_400 } });
    expect(((await long.json()) as { expires_in: number }).expires_in).toBe(1200);
  });

  test("a token cannot mint tokens; readonly keys cannot get tokens", async () => {
    const token = await issueToken(t, "service");
    const res = await readDecisionsPermission(token);
    expect(res.status).toBe(403);
    expect(await errorCode(res)).toBe("api_key_required");
    expect((await t.request("/v1/auth/token", { as: "readonly", method: "POST" })).status).toBe(403);
  });

  test("the session row records the jti, key and permissions", async () => {
    const token = await issueToken(t, "operator");
    const { jti } = decodeJwt(token);
    const [row] = await t.deps.database.db.select().from(operatorSessions).where(eq(operatorSessions.id, jti!));
    expect(row!.keyId).toBe(t.keyIds.operator);
    expect(row!.permissions).toContain("decisions:resolve");
  });
});

describe("rejected tokens", () => {
  test("tampered payload, tampered signature and truncated tokens are invalid_token", async () => {
    const token = await issueToken(t, "service");
    const [h, p, s] = token.split(".") as [string, string, string];
    const payload = JSON.parse(new TextDecoder().decode(base64url.decode(p)));
    payload.role = "admin";
    payload.permissions = ["keys:create"];
    await expect401(await readKeys(`${h}.${base64url.encode(JSON.stringify(payload))}.${s}`), "invalid_token");
    await expect401(await readKeys(`${h}.${p}.${s.slice(0, -4)}AAAA`), "invalid_token");
    await expect401(await readKeys(`${h}.${p}.`), "invalid_token");
    await expect401(await readKeys(`${h}.${p.slice(0, 20)}.${s}`), "invalid_token");
  });

  test("alg none and HMAC signed with the public key are refused", async () => {
    const token = await issueToken(t, "admin");
    const [h, p] = token.split(".") as [string, string, string];
    const header = JSON.parse(new TextDecoder().decode(base64url.decode(h)));
    const none = `${base64url.encode(JSON.stringify({ ...header, alg: "none" }))}.${p}.`;
    await expect401(await readKeys(none), "invalid_token");

    const jwks = (await (await t.request("/.well-known/jwks.json")).json()) as { keys: JWK[] };
    const publicKeyBytes = base64url.decode(jwks.keys[0]!.x!);
    const hmac = await new SignJWT(decodeJwt(token))
      .setProtectedHeader({ alg: "HS256", kid: header.kid, typ: "at+jwt" })
      .sign(publicKeyBytes);
    await expect401(await readKeys(hmac), "invalid_token");
  });

  test("wrong audience, wrong issuer, wrong typ, future nbf and unknown kid are refused", async () => {
    await expect401(await readKeys(await forge({ aud: "someone-else" })), "invalid_token");
    await expect401(await readKeys(await forge({ iss: "evil" })), "invalid_token");
    await expect401(await readKeys(await forge({}, { typ: "JWT" })), "invalid_token");
    const nowS = Math.floor(clock.now().getTime() / 1000);
    await expect401(await readKeys(await forge({ nbf: nowS + 600 })), "invalid_token");
    await expect401(await readKeys(await forge({}, { kid: "no-such-kid" })), "invalid_token");
    // Control: the same forge with no change is accepted (the forge is faithful).
    expect((await readKeys(await forge({}))).status).toBe(200);
  });

  test("a signature by another key with the server's kid is refused", async () => {
    const token = await issueToken(t, "admin");
    const { kid } = decodeProtectedHeader(token);
    const { privateKey } = await generateKeyPair("EdDSA");
    const foreign = await new SignJWT(decodeJwt(token)).setProtectedHeader({ alg: "EdDSA", kid, typ: "at+jwt" }).sign(privateKey);
    await expect401(await readKeys(foreign), "invalid_token");
  });

  test("an expired token is token_expired (after the clock tolerance)", async () => {
    const token = await issueToken(t, "admin", { ttl_seconds: 60 });
    expect((await readKeys(token)).status).toBe(200);
    clock.advance(62_000); // within the 5 s tolerance
    expect((await readKeys(token)).status).toBe(200);
    clock.advance(5_000);
    await expect401(await readKeys(token), "token_expired");
  });

  test("a token with a jti the server never issued is refused", async () => {
    await expect401(await readKeys(await forge({ jti: crypto.randomUUID() })), "invalid_token");
  });
});

describe("revocation", () => {
  test("POST /v1/auth/revoke by jti ends the token at once", async () => {
    const token = await issueToken(t, "admin");
    expect((await readKeys(token)).status).toBe(200);
    const { jti } = decodeJwt(token);
    const res = await t.request("/v1/auth/revoke", { as: "admin", method: "POST", json: { jti } });
    expect(res.status).toBe(200);
    await expect401(await readKeys(token), "token_revoked");
    const again = await t.request("/v1/auth/revoke", { as: "admin", method: "POST", json: { jti } });
    expect(again.status).toBe(409);
  });

  test("a token can revoke itself; revocation needs a jti otherwise", async () => {
    const token = await issueToken(t, "service");
    const res = await t.request("/v1/auth/revoke", { method: "POST", headers: bearer(token) });
    expect(res.status).toBe(200);
    expect((await res.json()) as { jti: string }).toMatchObject({ jti: decodeJwt(token).jti });
    await expect401(await t.request("/v1/auth/revoke", { method: "POST", headers: bearer(token) }), "token_revoked");
    const noJti = await t.request("/v1/auth/revoke", { as: "service", method: "POST" });
    expect(noJti.status).toBe(400);
  });

  test("another key's token is invisible (404) to a non-admin; an admin may revoke it", async () => {
    const serviceToken = await issueToken(t, "service");
    const { jti } = decodeJwt(serviceToken);
    const byOperator = await t.request("/v1/auth/revoke", { as: "operator", method: "POST", json: { jti } });
    expect(byOperator.status).toBe(404);
    expect((await t.request("/v1/auth/revoke", { as: "operator", method: "POST", json: { jti: crypto.randomUUID() } })).status).toBe(404);
    expect((await t.request("/v1/auth/revoke", { as: "admin", method: "POST", json: { jti } })).status).toBe(200);
  });

  test("revoking the parent key invalidates its tokens", async () => {
    const created = await t.request("/v1/keys", { as: "admin", method: "POST", json: { name: "parent", role: "admin" } });
    const { id, key } = (await created.json()) as { id: string; key: string };
    const issued = await t.request("/v1/auth/token", { method: "POST", headers: { "X-API-Key": key } });
    const token = ((await issued.json()) as { access_token: string }).access_token;
    expect(decodeJwt(token).sub).toBe(id);
    expect((await readKeys(token)).status).toBe(200);
    expect((await t.request(`/v1/keys/${id}/revoke`, { as: "admin", method: "POST" })).status).toBe(200);
    await expect401(await readKeys(token), "key_revoked");
  });
});

describe("a token never outlives what issued it", () => {
  async function createKey(body: Record<string, unknown>) {
    const res = await t.request("/v1/keys", { as: "admin", method: "POST", json: { name: "bounded", role: "service", ...body } });
    expect(res.status).toBe(201);
    return (await res.json()) as { id: string; key: string };
  }
  async function issueFor(key: string, ttlSeconds: number) {
    const res = await t.request("/v1/auth/token", { method: "POST", headers: { "X-API-Key": key }, json: { ttl_seconds: ttlSeconds } });
    expect(res.status).toBe(200);
    return (await res.json()) as { access_token: string; expires_in: number; expires_at: string; jti: string };
  }

  test("a token of a key that expires sooner ends with the key: expires_in, exp and the session row agree", async () => {
    const keyEnds = new Date(clock.now().getTime() + 120_000);
    const { key } = await createKey({ expires_at: keyEnds.toISOString() });
    const issued = await issueFor(key, 600);
    expect(issued.expires_in).toBe(120);
    expect(decodeJwt(issued.access_token).exp! * 1000).toBeLessThanOrEqual(keyEnds.getTime());
    const [row] = await t.deps.database.db.select().from(operatorSessions).where(eq(operatorSessions.id, issued.jti));
    expect(row!.expiresAt.toISOString()).toBe(issued.expires_at);
    expect((await readDecisions(issued.access_token)).status).toBe(200);
    clock.advance(121_000);
    await expect401(await readDecisions(issued.access_token), "key_expired");
  });

  test("a token of a key in its rotation grace ends when the grace ends", async () => {
    const { id, key } = await createKey({});
    const rotated = await t.request(`/v1/keys/${id}/rotate`, { as: "admin", method: "POST", json: { grace_seconds: 60 } });
    expect(rotated.status).toBe(201);
    const issued = await issueFor(key, 600);
    expect(issued.expires_in).toBe(60);
    expect((await readDecisions(issued.access_token)).status).toBe(200);
    clock.advance(61_000);
    await expect401(await readDecisions(issued.access_token), "key_revoked");
  });

  test("a token signed with the server's key cannot outlive its session row or claim another key, cached or not", async () => {
    const genuine = await issueToken(t, "admin", { ttl_seconds: 60 });
    const { jti, exp } = decodeJwt(genuine);
    const longer = await forge({ jti, exp: exp! + 3_600 });
    const otherKey = await forge({ jti, exp, sub: t.keyIds.service });
    // Cold: nothing about this session is cached yet.
    await expect401(await readKeys(longer), "invalid_token");
    // Warm: the genuine token puts the session in the cache; the forgeries are still refused.
    expect((await readKeys(genuine)).status).toBe(200);
    await expect401(await readKeys(longer), "invalid_token");
    await expect401(await readKeys(otherKey), "invalid_token");
    clock.advance(66_000);
    await expect401(await readKeys(genuine), "token_expired");
    await expect401(await readKeys(longer), "invalid_token");
  });

  test("a session row ending before the signed exp ends the token once the cached row is re-read", async () => {
    const token = await issueToken(t, "admin", { ttl_seconds: 600 });
    expect((await readKeys(token)).status).toBe(200);
    const { jti } = decodeJwt(token);
    // The row is what the server issued; a row ending earlier than the signed exp wins.
    await t.deps.database.db
      .update(operatorSessions)
      .set({ expiresAt: new Date(clock.now().getTime() - 10_000) })
      .where(eq(operatorSessions.id, jti!));
    clock.advance(6_000); // past AUTH_CACHE_TTL_MS (5 s)
    await expect401(await readKeys(token), "invalid_token");
  });
});

describe("object level through tokens", () => {
  test("a service token sees and cancels only its own key's decisions; a narrowed token cannot cancel", async () => {
    const other = await t.request("/v1/keys", { as: "admin", method: "POST", json: { name: "other service", role: "service" } });
    const otherKey = ((await other.json()) as { key: string }).key;
    const otherToken = (
      (await (await t.request("/v1/auth/token", { method: "POST", headers: { "X-API-Key": otherKey } })).json()) as { access_token: string }
    ).access_token;
    const mine = await issueToken(t, "service");

    const created = await t.request("/v1/decisions", {
      method: "POST",
      headers: bearer(mine),
      json: { kind: "deploy", title: "token-owned decision", payload: { version: "1.0.0" } },
    });
    expect(created.status).toBe(201);
    const { id } = (await created.json()) as { id: string };

    expect((await t.request(`/v1/decisions/${id}`, { headers: bearer(otherToken) })).status).toBe(404);
    expect((await t.request(`/v1/decisions/${id}/cancel`, { method: "POST", headers: bearer(otherToken) })).status).toBe(404);
    expect((await t.request(`/v1/decisions/${id}`, { headers: bearer(mine) })).status).toBe(200);

    const readOnly = await issueToken(t, "service", { permissions: ["decisions:read"] });
    expect((await t.request(`/v1/decisions/${id}`, { headers: bearer(readOnly) })).status).toBe(200);
    expect((await t.request(`/v1/decisions/${id}/cancel`, { method: "POST", headers: bearer(readOnly) })).status).toBe(403);
  });
});

describe("signing keys", () => {
  test("rotation: new tokens get the new kid, old tokens still verify, both keys are published", async () => {
    const before = await issueToken(t, "admin");
    const oldKid = decodeProtectedHeader(before).kid;
    const newKid = await rotateSigningKey(t.deps.database.db, clock.now());
    expect(newKid).not.toBe(oldKid);
    clock.advance(61_000); // past the key-set refresh interval
    const after = await issueToken(t, "admin");
    expect(decodeProtectedHeader(after).kid).toBe(newKid);
    expect((await readKeys(before)).status).toBe(200);
    const jwks = (await (await t.request("/.well-known/jwks.json")).json()) as { keys: JWK[] };
    expect(jwks.keys.map((k) => k.kid).sort()).toEqual([oldKid, newKid].sort() as string[]);
  });

  test("a configured PEM key signs (kid = RFC 7638 thumbprint); a configured ES256 JWK works too", async () => {
    for (const alg of ["EdDSA", "ES256"] as const) {
      const { privateKey } = await generateKeyPair(alg, { extractable: true });
      const pem = await exportPKCS8(privateKey);
      const app = await startTestApp({ env: { TOKEN_SIGNING_KEY: pem } });
      try {
        const token = await issueToken(app, "admin");
        expect(decodeProtectedHeader(token).alg).toBe(alg);
        const jwks = (await (await app.request("/.well-known/jwks.json")).json()) as { keys: JWK[] };
        expect(jwks.keys.map((k) => k.kid)).toContain(decodeProtectedHeader(token).kid!);
        expect((await app.request("/v1/keys?limit=1", { headers: bearer(token) })).status).toBe(200);
        expect(JSON.stringify(app.logs)).not.toContain(pem.split("\n")[1]!);
      } finally {
        await app.close();
      }
    }
  });

  test("configured key rotation: tokens of TOKEN_PREVIOUS_SIGNING_KEY still verify and it stays published", async () => {
    const pem = async () => exportPKCS8((await generateKeyPair("EdDSA", { extractable: true })).privateKey);
    const [oldPem, newPem] = [await pem(), await pem()];
    const before = await startTestApp({ env: { TOKEN_SIGNING_KEY: oldPem } });
    const after = await startTestApp({
      database: { ...before.deps.database, close: async () => {} },
      env: { TOKEN_SIGNING_KEY: newPem, TOKEN_PREVIOUS_SIGNING_KEY: oldPem },
    });
    try {
      const oldToken = await issueToken(before, "admin");
      const newToken = await issueToken(after, "admin");
      expect(decodeProtectedHeader(newToken).kid).not.toBe(decodeProtectedHeader(oldToken).kid);
      expect((await after.request("/v1/keys?limit=1", { headers: bearer(oldToken) })).status).toBe(200);
      const published = ((await (await after.request("/.well-known/jwks.json")).json()) as { keys: JWK[] }).keys.map((k) => k.kid);
      expect(published).toContain(decodeProtectedHeader(oldToken).kid!);
      // Without the previous key, the old tokens are refused.
      expect((await before.request("/v1/keys?limit=1", { headers: bearer(newToken) })).status).toBe(401);
    } finally {
      await after.close();
      await before.close();
    }
  });

  test("no token ever reaches a log line", async () => {
    const token = await issueToken(t, "admin");
    await readKeys(token);
    await readKeys(`${token}x`);
    const text = JSON.stringify(t.logs);
    expect(text).not.toContain(token.split(".")[2]!);
    expect(text).not.toMatch(/eyJ[A-Za-z0-9_-]{10,}/);
  });
});
