import type { TestApp } from "../helpers/app";

/** A browser-like client of the console over fetch: same-origin forms, the session cookie carried by hand. */
export interface ConsoleClient {
  get(path: string, headers?: Record<string, string>): Promise<Response>;
  post(path: string, form?: Record<string, string>, headers?: Record<string, string>): Promise<Response>;
}

/** A client with a session cookie and, when given, the session's CSRF token added to every form it posts. */
export function consoleClient(t: TestApp, cookie = "", csrf?: string): ConsoleClient {
  const headers = (extra: Record<string, string> = {}) => ({ ...(cookie ? { Cookie: cookie } : {}), ...extra });
  return {
    get: (path, extra) => fetch(t.url + path, { headers: headers(extra), redirect: "manual" }),
    post: (path, form = {}, extra) =>
      fetch(t.url + path, {
        method: "POST",
        headers: headers({ Origin: t.url, "Content-Type": "application/x-www-form-urlencoded", ...extra }),
        body: new URLSearchParams(csrf === undefined ? form : { csrf, ...form }).toString(),
        redirect: "manual",
      }),
  };
}

/**
 * Signs in with a raw API key and reads the CSRF token from the queue page's forms; answers the
 * client holding the session cookie and token, the Set-Cookie line, the cookie pair and the token.
 */
export async function signIn(t: TestApp, key: string): Promise<ConsoleClient & { setCookie: string; cookie: string; csrf: string }> {
  const res = await consoleClient(t).post("/console/login", { api_key: key });
  if (res.status !== 303) throw new Error(`sign-in answered ${res.status}: ${await res.text()}`);
  const setCookie = res.headers.get("set-cookie") ?? "";
  const cookie = setCookie.split(";")[0]!;
  const page = await (await consoleClient(t, cookie).get("/console")).text();
  const csrf = /name="csrf" value="([0-9a-f]{64})"/.exec(page)?.[1];
  if (!csrf) throw new Error("the queue page carries no CSRF token");
  return { ...consoleClient(t, cookie, csrf), setCookie, cookie, csrf };
}
