/**
 * Writes the TypeScript types of an OpenAPI document, as openapi-typescript generates them for any
 * client: `bun run openapi:types <document URL or file> <out.ts>`. The contract test generates them
 * again from the live document and fails when the committed file differs.
 */
import { plugin } from "bun";

// openapi-typescript builds its output with the TypeScript 5 compiler API, which the native
// TypeScript 7 this project type-checks with does not have: it gets its own copy.
plugin({
  name: "typescript-5",
  setup(build) {
    const typescript = Bun.resolveSync("typescript", import.meta.dir);
    const typescript5 = Bun.resolveSync("typescript5", import.meta.dir);
    build.onLoad({ filter: new RegExp(`^${RegExp.escape(typescript)}$`) }, () => ({
      contents: `export { default } from ${JSON.stringify(typescript5)};`,
      loader: "js",
    }));
  },
});

export async function openapiTypes(document: unknown): Promise<string> {
  const { default: openapiTS, astToString } = await import("openapi-typescript");
  // A field with a default stays optional, as the document's `required` says: by default
  // openapi-typescript would make callers send every defaulted request field.
  return astToString(await openapiTS(document as Parameters<typeof openapiTS>[0], { defaultNonNullable: false }));
}

if (import.meta.main) {
  const [source, out] = process.argv.slice(2);
  if (!source || !out) throw new Error("usage: openapi-types <document URL or file> <out.ts>");
  const text = /^https?:/.test(source) ? await (await fetch(source)).text() : await Bun.file(source).text();
  await Bun.write(out, await openapiTypes(JSON.parse(text)));
}
