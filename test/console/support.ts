import type { TestApp } from "../helpers/app";

/** A browser-like client of the console over fetch: same-origin forms, the session cookie carried by hand. */
export interface ConsoleClient {
  get(path: string, headers?: Record<string, string>): Promise<Response>;
  post(path: string, form?: Record<string, string>, headers?: Record<string, string>): Promise<Response>;
}

export function consoleClient(t: TestApp, cookie = ""): ConsoleClient {
  const headers = (extra: Record<string, string> = {}) => ({ ...(cookie ? { Cookie: cookie } : {}), ...extra });
  return {
    get: (path, extra) => fetch(t.url + path, { headers: headers(extra), redirect: "manual" }),
    post: (path, form = {}, extra) =>
      fetch(t.url + path, {
        method: "POST",
        headers: headers({ Origin: t.url, "Content-Type": "application/x-www-form-urlencoded", ...extra }),
        body: new URLSearchParams(form).toString(),
        redirect: "manual",
      }),
  };
}

/** Signs in with a raw API key; answers the client holding the session cookie, and the Set-Cookie line. */
export async function signIn(t: TestApp, key: string): Promise<ConsoleClient & { setCookie: string }> {
  const res = await consoleClient(t).post("/console/login", { api_key: key });
  if (res.status !== 303) throw new Error(`sign-in answered ${res.status}: ${await res.text()}`);
  const setCookie = res.headers.get("set-cookie") ?? "";
  const pair = setCookie.split(";")[0]!;
  return { ...consoleClient(t, pair), setCookie };
}
